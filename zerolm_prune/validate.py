"""Check a command's arguments and files before it loads anything or writes anything.

``before(args)`` runs in ``cli.main`` between argparse and the command: every path and file the
command will read is checked here with ``zerolm_prune.inputs`` (one reader per kind of file), and
every output path with ``zerolm_prune.paths``. A mistake costs a second and leaves nothing behind,
instead of a traceback minutes later or a half-written run folder. ``output_folder(args)`` names
the folder a command locks (``locking.out_lock``).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import CONFIG_MAPPING, AutoModel, AutoModelForCausalLM

from . import inputs, loading
from .assets import BUILTIN_MODELS
from .bench import lts, nasbench_bert
from .commands.eval import default_out
from .commands.publish import check_repo_id, upload_plan
from .errors import UserError
from .evaluate import resolve_suite
from .models import get_adapter
from .paths import check_output_dir, check_output_file
from .proxy import CapacityTable
from .safetensors_io import read_safetensors_header
from .search import check_search
from .space import load_space, validate_space
from .tasks import spec as task_spec
from .tasks.data import user_files

#: structural errors a loader raises on a file of the wrong shape (anything else stays a bug)
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError,
                ZeroDivisionError)


def check_text_args(args: argparse.Namespace) -> None:
    """Every string argument is valid UTF-8 without NUL (argv from a non-UTF-8 file name arrives
    with surrogates that cannot be printed, written to JSON or shown in a report)."""
    for key, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    inputs.path_text(item) if item else None
                except argparse.ArgumentTypeError as err:
                    raise UserError(f"--{key.replace('_', '-')}: {err}") from None


#: argument -> check (``inputs`` types, also usable on values argparse already parsed)
VALUES: dict[str, Callable[[Any], Any]] = {"budget": inputs.budget, "alpha": inputs.alpha,
                                           "batch_size": inputs.batch_size}


def check_values(args: argparse.Namespace) -> None:
    """Numbers argparse only parsed (``--budget nan``, ``--alpha inf``), checked as ``inputs`` says;
    also --top-k, which must be at least 1 (its upper bound is the search's own check)."""
    for key, check in VALUES.items():
        value = getattr(args, key, None)
        if value is not None:
            try:
                check(str(value))
            except argparse.ArgumentTypeError as err:
                message = str(err)
                flag = f"--{key.replace('_', '-')}"
                raise UserError(message if message.startswith(flag) else f"{flag} {message}") from None
    top_k = getattr(args, "top_k", None)
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")


def check_device(name: str | None) -> None:
    """--device names a device this machine has (torch otherwise fails deep inside a move)."""
    if not name or name == "cpu":
        return

    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}); use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif kind == "meta":
        raise UserError("--device meta holds no weights; use cpu or cuda")
    else:
        module = getattr(torch, kind, None)
        if module is None or not getattr(module, "is_available", lambda: False)():
            raise UserError(f"--device {name}: not available on this machine; use --device cpu")


def check_model(spec: str | None, trust_remote_code: bool = False) -> Any:
    """MODEL: a built-in, a hub id, or a folder whose config.json and weight headers are sane.
    Returns the config (or None for a hub id / a recipe, whose shapes come later)."""
    if not spec:
        return None

    if spec in BUILTIN_MODELS:
        return loading.load_config(spec)
    if spec.endswith((".yaml", ".yml")):  # a recipe standing in for MODEL (rank/space NNCF)
        inputs.read_yaml_mapping(spec, "recipe")
        return None
    where = loading.resolve(spec)  # one line for a non-folder, a folder without config.json, a malformed id
    if not Path(where).is_dir():
        return None  # a hub id: the hub checks it
    inputs.check_model_folder(where)
    _refuse_unpermitted_code(Path(where), trust_remote_code)
    _refuse_pickles_only(Path(where))
    try:
        config = loading.load_config(spec, trust_remote_code=trust_remote_code)
    except Exception as err:  # transformers' own type checks of config fields (hub strict dataclasses)
        if not (isinstance(err, SHAPE_ERRORS) or type(err).__module__.startswith("huggingface_hub")):
            raise
        raise UserError(f"{spec}: its config.json is malformed ({str(err).strip().splitlines()[-1][:200]})") from None
    _check_weights_fit(Path(where), config)
    return config


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") else key


def _check_weights_fit(folder: Path, config: Any) -> None:
    """The safetensors tensors are the ones config.json describes (names and shapes), checked on
    the meta device (no memory): a config of another model or size otherwise loads with freshly
    initialised weights (silently) or fails deep inside transformers."""
    files = sorted(folder.glob("*.safetensors"))
    if not files or loading.is_pruned_folder(folder):
        return

    try:
        with torch.device("meta"):
            model = (AutoModelForCausalLM if loading._is_causal(config) else AutoModel).from_config(config)
    except Exception:  # noqa: BLE001 - a config we cannot build here is reported by the real load
        return
    prefix = getattr(model, "base_model_prefix", "") or ""
    want = {_strip(k, prefix): tuple(v.shape) for k, v in model.state_dict().items()}
    have: dict[str, tuple] = {}
    for file in files:
        header, _ = read_safetensors_header(file)
        have.update({_strip(k, prefix): tuple(v["shape"]) for k, v in header.items()})
    wrong = [k for k in want if k in have and want[k] != have[k]]
    if wrong:
        k = wrong[0]
        raise UserError(f"{folder}: {len(wrong)} tensors do not have the shapes config.json describes (first: {k} is "
                        f"{list(have[k])}, the config says {list(want[k])}); is config.json from another model?")
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing = [k for k in want if k not in have and k not in tied and "rotary" not in k and "position_ids" not in k]
    if missing and len(missing) * 2 > len(want):  # most of the model absent: another architecture
        raise UserError(f"{folder}: {len(missing)} of {len(want)} tensors the config describes are not in the weights "
                        f"(first: {missing[0]}); is config.json from another model?")


def _refuse_unpermitted_code(folder: Path, trust_remote_code: bool) -> None:
    config = inputs.check_config_json(folder / "config.json")
    if trust_remote_code or loading.is_pruned_folder(folder) or not config.get("auto_map"):
        return

    if config.get("model_type") not in CONFIG_MAPPING:
        raise UserError(f"{folder} needs its own modelling code (auto_map, model_type {config.get('model_type')!r}); "
                        "it runs only with --trust-remote-code, and only if you trust it")


def _refuse_pickles_only(folder: Path) -> None:
    """Weights only in pickle files (.bin/.pt): loaded with ``weights_only=True``; a file that
    holds more than tensors is refused in one line rather than by a traceback later."""
    if any(folder.glob("*.safetensors")):
        return
    for file in sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")):
        check_pickle(file)


def check_pickle(path: Path) -> None:
    """A torch pickle that ``torch.load(weights_only=True)`` accepts (only tensors and containers)."""
    try:
        torch.load(str(path), map_location="meta", weights_only=True, mmap=False)
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: refused to unpickle it (it holds more than tensors: "
                        f"{str(err).splitlines()[0][:160]}); convert it to safetensors if you trust it") from None
    except (RuntimeError, EOFError, ValueError, OSError, *SHAPE_ERRORS) as err:
        raise UserError(f"{path}: not a readable torch weights file ({type(err).__name__}); "
                        "copy the checkpoint again") from None


def check_space(source: str, model: str | None = None, **ratios: Any) -> Any:
    """A search space from any source (recipe YAML, NNCF / saved JSON, MODEL ratios), or one line."""
    path = Path(source).expanduser()
    if path.suffix in (".yaml", ".yml") and path.exists():
        inputs.read_yaml_mapping(path, "recipe")
    elif path.suffix == ".json" and path.exists():
        inputs.read_json(path, "search space", lenient=True)

    try:
        return load_space(source, model=model, **ratios)
    except SHAPE_ERRORS as err:
        raise UserError(f"{source}: not a valid search space ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200] if str(err) else 'malformed'})") from None


def check_fits(space: Any, config: Any, model: str) -> None:
    """The space (a recipe for another model?) fits MODEL's geometry: before any weights load."""
    if config is None:
        return

    try:
        validate_space(space, get_adapter(config))
    except SHAPE_ERRORS as err:
        raise UserError(f"{space.source or space.name}: does not fit {model} ({err})") from None


def check_budget(config: Any, space: Any, budget: float, *, by: str = "params", top_k: int = 1,
                 include_lora: bool = False, seq_len: int = 1) -> None:
    """A budget some subnet fits, checked on a shapes-only table (seconds, no weights): a run with
    an impossible budget must fail before it loads the model or writes run.json."""
    if config is None:
        return

    table = CapacityTable.random_init(config, space, seq_len=seq_len)
    check_search(table, budget, by=by, top_k=top_k, include_lora=include_lora)


def check_ranked(spec: str, config: Any = None, model: str | None = None) -> int:
    """A ranked.json / subnet file, every entry checked; with a config, its depth must match."""
    _doc, layers = inputs.read_ranked_file(spec)
    if config is not None:
        n = get_adapter(config).num_layers
        if layers != n:
            raise UserError(f"{spec}: subnets have {layers} layers but the model has {n} ({model}); rank subnets "
                            "of this model")
    return layers


def check_results(path: Path) -> None:
    """results.json of an interrupted eval, read back when resuming."""
    if not path.exists():
        return
    data = inputs.read_json_mapping(path, "results file (resuming)")
    cands = data.get("candidates", [])
    if not isinstance(cands, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in cands):
        raise UserError(f"{path}: 'candidates' must be a list of objects with a 'name'; move the file away to start over")
    for c in cands:
        if not isinstance(c.get("tasks", {}), dict):
            raise UserError(f"{path}: candidate {c['name']!r} has malformed 'tasks'; move the file away to start over")


def check_suite(suite: str | None) -> None:
    if not suite:
        return
    if suite.endswith((".yaml", ".yml")):
        data = inputs.read_yaml_mapping(suite, "suite file")
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
            raise UserError(f"suite file {suite}: 'tasks' must be a non-empty list of task names")

    resolve_suite(suite)


#: fields lm-eval's built-in prompt of each task reads from a document (the hub dataset's own)
TASK_FIELDS = {
    "boolq": ("passage", "question", "label"), "piqa": ("goal", "sol1", "sol2", "label"),
    "hellaswag": ("ctx_a", "ctx_b", "activity_label", "endings", "label"),
    "winogrande": ("sentence", "option1", "option2", "answer"), "arc_easy": ("question", "choices", "answerKey"),
    "arc_challenge": ("question", "choices", "answerKey"), "openbookqa": ("question_stem", "choices", "answerKey"),
    "social_iqa": ("context", "question", "answerA", "answerB", "answerC", "label"),
}


def check_data_dir(data_dir: str | None, suite: str | None, config: Any = None) -> None:
    """--data-dir: every task of the suite has a file there, and JSONL/JSON files hold one JSON
    object per line (a malformed line otherwise fails inside lm-eval, after the model loaded).
    Encoders (GLUE probe, no suite) only need the folder to exist."""
    if not data_dir:
        return
    check_folder_in(data_dir, "--data-dir")

    if config is not None and not loading._is_causal(config):
        return

    for task in resolve_suite(suite or "commonsense"):
        builder, files = user_files(task_spec(task), data_dir)
        if builder != "json":
            continue
        for file in files.values():
            _check_jsonl(Path(file), TASK_FIELDS.get(task, ()))


def _check_row(path: Path, where: str, row: Any, fields: tuple[str, ...]) -> None:
    if not isinstance(row, dict):
        raise UserError(f"{path}: {where} is a {type(row).__name__}, not a JSON object")
    missing = [f for f in fields if row.get(f) is None]
    if missing:
        raise UserError(f"{path}: {where} lacks {', '.join(missing)} (documents need the hub dataset's fields: "
                        f"{', '.join(fields)})")


def _check_jsonl(path: Path, fields: tuple[str, ...] = ()) -> None:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start})") from None
    stripped = text.strip()
    if stripped.startswith("["):  # a .json file holding one list of documents
        rows = inputs.read_json(path, "task data")
        if not isinstance(rows, list) or not rows:
            raise UserError(f"{path}: a JSON task file is a list of objects (one per document)")
        for n, row in enumerate(rows):
            _check_row(path, f"document {n}", row, fields)
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except (ValueError, RecursionError):
            raise UserError(f"{path}: line {n} is not a JSON object; one document per line") from None
        _check_row(path, f"line {n}", row, fields)
    if not stripped:
        raise UserError(f"{path} holds no documents")


def check_folder_in(path: str | None, flag: str) -> None:
    if path and not Path(path).is_dir():
        raise UserError(f"{flag} {path} is not a folder")


def check_adapter(path: str | None) -> None:
    """--adapter: a folder with a JSON adapter_config.json and weights whose headers are sane."""
    if not path:
        return
    folder = Path(path)
    check_folder_in(path, "--adapter")
    inputs.read_json_mapping(folder / "adapter_config.json", "adapter config")
    for file in folder.glob("*.safetensors"):
        inputs.check_safetensors(file)
    for file in list(folder.glob("*.bin")) + list(folder.glob("*.pt")):
        check_pickle(file)


def check_bench(kind: str, path: str, reading: str = "faithful") -> None:
    """A NAS benchmark file: the schema, and every record buildable (sizes positive whole numbers)."""
    inputs.read_json(path, "benchmark file")
    try:
        if kind == "nasbench-bert":
            rows = nasbench_bert.load_records(path)
            archs = [nasbench_bert.build(r, reading=reading) for r in rows]
        else:
            lts_kind, rows = lts.load_records(path)
            archs = [lts.build(r, lts_kind) for r in rows]
        for a in archs:
            if not math.isfinite(float(a.label)):
                raise ValueError(f"label {a.label!r} of record {a.id!r}")
            for block in a.blocks:
                for m in block.matrices:
                    if not (m.rows > 0 and m.cols > 0 and m.rows * m.cols < 10**10):
                        raise ValueError(f"a {m.rows}x{m.cols} matrix")
    except UserError:
        raise
    except SHAPE_ERRORS as err:
        raise UserError(f"benchmark file {path}: a record does not describe an architecture ({type(err).__name__}: "
                        f"{str(err)[:120]})") from None


# ---- per command ------------------------------------------------------------------------------------
def _info(args):
    check_model(args.model, args.trust_remote_code)


def _space(args):
    if args.rank:
        for item in str(args.rank).split(","):
            if item.strip():
                try:
                    inputs.count(65_536, 1, "a LoRA rank")(item)
                except argparse.ArgumentTypeError as err:
                    raise UserError(f"--rank {args.rank!r}: {err}; write ranks like --rank 32,28") from None
    if args.out:
        check_output_file(args.out, "--out")
    if args.model:
        check_model(args.model)
    if Path(args.source).expanduser().is_dir():  # a MODEL folder: its config and headers first
        check_model(args.source)
    check_space(args.source, model=args.model, ffn=args.ffn, heads=args.heads, rank=args.rank)


def _rank(args):
    for path, flag in ((args.out, "--out"), (args.plot, "--plot")):
        if path:
            check_output_file(path, flag)
    config = check_model(args.model, args.trust_remote_code)
    space = check_space(args.space, model=args.model)
    if args.model and not args.model.endswith((".yaml", ".yml")):
        check_fits(space, config, args.model)
        check_budget(config, space, args.budget, by=args.by, top_k=args.top_k, include_lora=args.include_lora,
                     seq_len=args.seq_len)


def _score(args):
    check_output_file(args.out, "--json")
    config = check_model(args.model, args.trust_remote_code)
    check_ranked(args.subnets, config, args.model)


def _prune(args):
    check_output_dir(args.out, "--out")
    config = check_model(args.model, args.trust_remote_code)
    check_ranked(args.subnet, config, args.model)
    check_adapter(args.adapter)


def _eval(args):
    args.out = args.out or str(default_out(args.model, args.suite, args.limit))
    check_output_dir(args.out, "--out")
    config = check_model(args.model, args.trust_remote_code)
    if args.subnets:
        check_ranked(args.subnets, config, args.model)
    check_suite(args.suite)
    if args.source == "local":
        check_data_dir(args.data_dir, args.suite, config)
    check_results(Path(args.out) / "results.json")


def _run_folder(out: str, model: str, space_source: str, trust_remote_code: bool = False, suite: str | None = None,
                data_dir: str | None = None, budget: float = 0.8, by: str = "params", top_k: int = 3) -> None:
    """run/demo: the whole run folder checked, the space fitted to the model and the budget to the
    space, before loading (a failure here writes no run.json that would block the fixed command)."""
    check_output_dir(out, "--out")
    config = check_model(model, trust_remote_code)
    space = check_space(space_source, model=model)
    check_fits(space, config, model)
    check_budget(config, space, budget, by=by, top_k=top_k)
    check_suite(suite)
    check_data_dir(data_dir, suite, config)
    folder = Path(out)
    if (folder / "run.json").exists():
        inputs.read_json_mapping(folder / "run.json", "run settings (resuming)")
    if (folder / "ranked.json").exists():
        check_ranked(str(folder / "ranked.json"), config, model)
    check_results(folder / "eval" / "results.json")


def _run(args):
    _run_folder(args.out, args.model, args.space or args.model, args.trust_remote_code, args.suite, args.data_dir,
                budget=args.budget, by=args.by, top_k=args.top_k)


def _demo(args):
    _run_folder(args.out, "smollm2-135m", "smollm2-135m", suite="commonsense", budget=args.budget)


def _bench(args):
    if args.json:
        check_output_file(args.json, "--json")
    check_bench(args.benchmark, args.data, getattr(args, "reading", "faithful"))


def _publish(args):
    check_repo_id(args.repo_id)
    check_folder_in(args.folder, "DIR")
    upload_plan(Path(args.folder))  # refuses links that leave the folder


CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "info": _info, "space": _space, "rank": _rank, "score": _score, "prune": _prune, "eval": _eval, "run": _run,
    "demo": _demo, "bench": _bench, "publish": _publish,
}

#: commands that write into one output folder, locked for the whole command
LOCKED = {"prune": "out", "eval": "out", "run": "out", "demo": "out"}


def before(args: argparse.Namespace) -> None:
    """All checks of ``args.command``; UserError on the first problem."""
    check_text_args(args)
    check_values(args)
    check_device(getattr(args, "device", None))
    check = CHECKS.get(getattr(args, "command", None) or "")
    if check is not None:
        check(args)


def output_folder(args: argparse.Namespace) -> str | None:
    """The --out folder this command must hold the lock of, if any."""
    key = LOCKED.get(getattr(args, "command", None) or "")
    return getattr(args, key, None) if key else None
