"""``zerolm-prune publish DIR --repo-id ID``: upload a pruned folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

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


def upload_plan(folder: Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file that would be uploaded; hidden files are skipped."""
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append((rel.as_posix(), path.stat().st_size))
    return files


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _network_error(err: BaseException) -> bool:
    module = type(err).__module__.split(".")[0]
    return isinstance(err, (OSError, ConnectionError, TimeoutError)) or module in ("httpx", "httpcore", "requests", "urllib3")


def run(args: argparse.Namespace) -> int:
    import os

    from ..errors import UserError
    from ..loading import is_pruned_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass the --out folder of `zerolm-prune prune`")
    if not is_pruned_folder(folder):
        raise UserError(f"{folder} was not written by `zerolm-prune prune` (no 'zerolm_prune' key in config.json)")
    if args.repo_id.count("/") != 1 or any(not part for part in args.repo_id.split("/")):
        raise UserError(f"--repo-id {args.repo_id!r} must look like owner/name")
    plan = upload_plan(folder)
    if args.dry_run:
        total = sum(size for _, size in plan)
        print(f"would upload {len(plan)} files ({_human(total)}) to https://huggingface.co/{args.repo_id}"
              f"{' (private)' if args.private else ''}:")
        for name, size in plan:
            print(f"  {name:<40} {_human(size):>10}")
        return 0

    from huggingface_hub import HfApi, get_token
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
                                 ignore_patterns=[".*", "**/.*"],
                                 commit_message="Upload pruned model (zerolm-prune)")
    except OfflineModeIsEnabled:
        raise UserError("the Hugging Face Hub is unreachable: offline mode is enabled; unset HF_HUB_OFFLINE") from None
    except HfHubHTTPError as err:
        raise UserError(f"the Hub refused the upload to {args.repo_id}: {str(err).splitlines()[0]}") from None
    except Exception as err:
        if _network_error(err):
            raise UserError(f"the Hugging Face Hub is unreachable ({type(err).__name__}); check the network and retry") from None
        raise
    print(f"uploaded {len(plan)} files to {getattr(info, 'commit_url', None) or 'https://huggingface.co/' + args.repo_id}")
    return 0
