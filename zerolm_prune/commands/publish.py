"""``zerolm-prune publish DIR --repo-id ID``: upload a pruned folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import loading
from ..errors import UserError

ORDER = 60


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "publish",
        help="upload a folder written by `zerolm-prune prune` to the Hugging Face Hub",
        description="Create (or reuse) a model repository and upload DIR. Uses the token of `hf auth login` "
        "or $HF_TOKEN; the token is never written anywhere.\n\nExamples:\n"
        "  zerolm-prune publish pruned/ --repo-id me/smollm2-135m-pruned --dry-run\n"
        "  zerolm-prune publish pruned/ --repo-id me/smollm2-135m-pruned --private",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", metavar="DIR", help="a folder written by `zerolm-prune prune`")
    p.add_argument("--repo-id", required=True, help="hub repository, owner/name")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded and stop")
    p.set_defaults(func=run)


def check_repo_id(repo_id: str) -> None:
    """The repo id rules of the hub itself (``huggingface_hub.utils.validate_repo_id``) plus the
    owner/name form, so --dry-run never accepts an id the real upload rejects."""
    from huggingface_hub.errors import HFValidationError  # lazy: keeps `zerolm-prune --help` fast
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"--repo-id {repo_id!r} is not a valid hub repository id ({str(err).splitlines()[0][:160]})") from None
    if repo_id.count("/") != 1:
        raise UserError(f"--repo-id {repo_id!r} must look like owner/name")


def upload_plan(folder: Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file that would be uploaded; hidden files are skipped.

    Symbolic links whose target lies outside ``folder`` are refused: an upload follows them and
    would publish a file the user never put in the folder (a key, a home directory).
    """
    from ..paths import inside  # lazy: keeps `zerolm-prune --help` fast

    files = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        for name in sorted(dirs + names):
            path = Path(root) / name
            rel = path.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if path.is_symlink() and not inside(folder, path):
                raise UserError(f"{path} is a symbolic link to {os.path.realpath(path)}, outside {folder}; "
                                "publishing would upload it: remove the link or copy the file in")
            if path.is_symlink() and path.is_dir():
                raise UserError(f"{path} is a symbolic link to a folder; copy the folder in instead")
            if path.is_file():
                files.append((rel.as_posix(), path.stat().st_size))
    return sorted(files)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


#: exception classes (by module) that mean "no network": the hub client uses httpx or requests
_NETWORK_MODULES = ("httpx", "httpcore", "requests", "urllib3", "socket", "ssl", "http")


def _network_error(err: BaseException) -> bool:
    """True when ``err`` or anything in its cause chain is a connection/timeout/DNS failure."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        module = type(err).__module__.split(".")[0]
        if isinstance(err, (ConnectionError, TimeoutError)) or module in _NETWORK_MODULES:
            return True
        if isinstance(err, OSError) and not getattr(err, "filename", None):
            return True
        err = err.__cause__ or err.__context__
    return False


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass the --out folder of `zerolm-prune prune`")
    if not loading.is_pruned_folder(folder):
        raise UserError(f"{folder} was not written by `zerolm-prune prune` (no 'zerolm_prune' key in config.json)")
    check_repo_id(args.repo_id)
    plan = upload_plan(folder)
    if args.dry_run:
        total = sum(size for _, size in plan)
        print(f"would upload {len(plan)} files ({_human(total)}) to https://huggingface.co/{args.repo_id}"
              f"{' (private)' if args.private else ''}:")
        for name, size in plan:
            print(f"  {name:<40} {_human(size):>10}")
        return 0

    try:
        return _upload(args, folder, plan)
    except UserError:
        raise
    except Exception as err:
        if _network_error(err):
            raise UserError(f"the Hugging Face Hub is unreachable ({type(err).__name__}); check the network and "
                            "retry") from None
        raise


def _upload(args: argparse.Namespace, folder: Path, plan: list[tuple[str, int]]) -> int:
    from huggingface_hub import HfApi, get_token  # lazy: keeps `zerolm-prune --help` fast
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UserError("the Hugging Face Hub is unreachable: HF_HUB_OFFLINE is set; unset it to publish "
                        "(or use --dry-run)")
    if not get_token():
        raise UserError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then retry")
    api = HfApi()
    try:
        api.create_repo(args.repo_id, private=args.private, exist_ok=True, repo_type="model")
        info = api.upload_folder(folder_path=str(folder), repo_id=args.repo_id, repo_type="model",
                                 allow_patterns=[name for name, _ in plan],  # exactly what was listed
                                 commit_message="Upload pruned model (zerolm-prune)")
    except OfflineModeIsEnabled:
        raise UserError("the Hugging Face Hub is unreachable: offline mode is enabled; unset HF_HUB_OFFLINE") from None
    except HfHubHTTPError as err:
        raise UserError(f"the Hub refused the upload to {args.repo_id}: {str(err).splitlines()[0]}") from None
    print(f"uploaded {len(plan)} files to {getattr(info, 'commit_url', None) or 'https://huggingface.co/' + args.repo_id}")
    return 0
