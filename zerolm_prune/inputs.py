"""Every kind of input the CLI takes, checked in one place each, before any model loads.

Why: a careless or hostile argument or file used to end in a traceback minutes into a run, be
accepted silently (``767.5`` used as 767, ``nan`` as a budget), or leave output behind. Each
function here checks one kind of input completely and raises ``UserError`` with one line that says
what is wrong and what to do. Two families:

* argparse ``type=`` callables (``finite_float``, ``budget``, ``count``, ``batch_size`` ...): a bad
  value is argparse's one-line usage error before the command even starts;
* file readers (``read_json``, ``read_yaml_mapping``, ``check_subnet_dict``, ``check_safetensors``,
  ``check_config_json`` ...): called by ``zerolm_prune.validate`` for each command's files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

#: upper bounds that no real run reaches; larger values are typos or attacks (memory, hours of work)
MAX_LAYERS = 10_000
MAX_WIDTH = 10_000_000
MAX_JSON_BYTES = 512 * 1024**2
MAX_HEADER_BYTES = 100 * 1024**2
MAX_ABSOLUTE_BUDGET = 1e15


# ---- argparse types ---------------------------------------------------------------------------
def _number(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def finite_float(text: str) -> float:
    """Any finite number (``nan``/``inf`` would poison every score and JSON file downstream)."""
    return _number(text)


def alpha(text: str) -> str:
    """``auto`` or a finite number, returned as text (rank/run/bench parse it themselves)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = _number(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--alpha must be a number or 'auto', got {text!r}") from None
    if abs(value) > 1e6:
        raise argparse.ArgumentTypeError(f"{text!r}: alpha weighs S_Attn against S_FFN; use a value in [-1e6, 1e6]")
    return str(text).strip()


def alpha_number(text: str) -> float:
    """A finite alpha as a number (score's --alpha), bounded as ``alpha``."""
    return float(alpha(text)) if str(text).strip().lower() != "auto" else _number("auto")


def open_fraction(text: str) -> float:
    """A share strictly between 0 and 1 (e.g. --fit-fraction)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie strictly between 0 and 1")
    return value


def budget(text: str) -> float:
    """A fraction of the full model in (0, 1], or an absolute count above 1."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be positive: a fraction in (0, 1] of the full model or an "
                                         "absolute count > 1")
    if value > 1 and value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r}: above 1 a budget is an absolute count of params or MACs, a whole "
                                         "number; a fraction of the model is at most 1")
    if value > MAX_ABSOLUTE_BUDGET:
        raise argparse.ArgumentTypeError(f"{text!r}: an absolute budget above {MAX_ABSOLUTE_BUDGET:.0e} is not a model size")
    return value


def count(cap: int, minimum: int = 1, what: str = "number") -> Callable[[str], int]:
    """An argparse type for a whole number in [minimum, cap] (``1.5``, ``"1e9"``, ``0`` refused)."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?\d+\s*", str(text)):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        value = int(text)
        if not minimum <= value <= cap:
            raise argparse.ArgumentTypeError(f"{what} must be between {minimum} and {cap:,}, got {value:,}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its message
    return parse


positive_int = count(10_000_000, 1, "a positive number")
seq_len = count(1_048_576, 1, "--seq-len")
seed = count(2**32 - 1, 0, "--seed")
fewshot = count(100, 0, "--num-fewshot")
bootstrap = count(1_000_000, 0, "--bootstrap")  # 0: no intervals (fast)


def batch_size(text: str) -> str:
    """``auto``, ``auto:N`` or a whole number 1..4096, returned as text for ``parse_batch_size``."""
    text = str(text).strip()
    if text == "auto" or re.fullmatch(r"auto:[1-9]\d{0,3}", text):
        return text
    count(4096, 1, "--batch-size")(text)
    return text


def path_text(text: str) -> str:
    """A path argument: non-empty, no NUL byte, valid UTF-8 (a file name that is not cannot be
    printed, recorded in JSON or shown in a report)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path with a NUL byte")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise argparse.ArgumentTypeError(f"{shown!r} is not valid UTF-8; rename it or use another path") from None
    if len(text) > 4096:
        raise argparse.ArgumentTypeError("a path longer than 4096 characters")
    return text


def device(text: str) -> str:
    """A torch device name; whether it exists is checked later (``validate.check_device``)."""
    text = path_text(text).strip()
    if not re.fullmatch(r"(cpu|cuda|mps|xpu|hpu|npu|meta)(:\d{1,3})?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device; use cpu, cuda, cuda:N or mps")
    return text


# ---- files --------------------------------------------------------------------------------------
def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise ValueError(f"{text} is too large for a number")
    return value


def loads_lenient_json(text: str) -> Any:
    """``json.loads`` that accepts the trailing commas of the released LoNAS files."""
    out, in_string, escape = [], False, False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < len(text) and text[j] in " \t\r\n":
                j += 1
            if j >= len(text) or text[j] not in "]}":
                out.append(ch)
        else:
            out.append(ch)
        i += 1
    return json.loads("".join(out))


def read_json(path: str | Path, what: str, *, lenient: bool = False) -> Any:
    """The JSON in a regular file (UTF-8, no NaN/Infinity, at most MAX_JSON_BYTES), or one line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path}: file not found")
    if not path.is_file():
        raise UserError(f"{what} {path} is not a regular file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise UserError(f"{what} {path} is larger than {MAX_JSON_BYTES >> 20} MB; that is not a file this tool wrote")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {err.start}); is it the right file?") from None
    try:
        if lenient:
            return loads_lenient_json(text)
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise UserError(f"{what} {path} nests too deeply to be a real file") from None
    except ValueError as err:
        line = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        msg = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
        raise UserError(f"{what} {path} is not valid JSON{line} ({msg})") from None


def read_json_mapping(path: str | Path, what: str) -> dict[str, Any]:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a JSON object, not {type(data).__name__}")
    return data


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML mapping (safe loader only: no Python objects are ever built from YAML)."""
    import yaml  # lazy: inputs is on the CLI's start-up path; yaml adds ~20 ms to --help

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist or is not a regular file")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {err.start})") from None
    except (yaml.YAMLError, RecursionError) as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0] if str(err) else type(err).__name__
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{what} {path} is not valid YAML{where} ({problem})") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must be a YAML mapping, not {type(data).__name__}")
    return data


def whole(value: Any, where: str, *, minimum: int = 0, cap: int = MAX_WIDTH) -> int:
    """An int read from a file: a real JSON integer (not ``767.5``, ``"768"`` or ``true``) in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{where}: {value!r} must be a whole number written as one (no quotes, no decimals)")
    if not minimum <= value <= cap:
        raise UserError(f"{where}: {value} is out of range [{minimum}, {cap:,}]")
    return value


def _int_list(value: Any, where: str, n: int | None) -> list[int]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{where} must be a non-empty list of whole numbers, one per layer")
    if len(value) > MAX_LAYERS:
        raise UserError(f"{where} lists {len(value)} layers; more than {MAX_LAYERS} is not a model")
    if n is not None and len(value) != n:
        raise UserError(f"{where} has {len(value)} entries for {n} layers; give one per layer")
    return [whole(v, f"{where}[{i}]") for i, v in enumerate(value)]


def check_subnet_dict(data: Any, where: str) -> dict[str, Any]:
    """A subnet as JSON: ``{"heads": [int], "ffn": [int], "ranks": {group: [int]}}``, equal lengths."""
    if not isinstance(data, dict):
        raise UserError(f"{where} must be an object {{\"heads\": [...], \"ffn\": [...]}}, not {type(data).__name__}")
    for key in ("heads", "ffn"):
        if key not in data:
            raise UserError(f"{where} has no {key!r} list")
    heads = _int_list(data["heads"], f"{where}.heads", None)
    _int_list(data["ffn"], f"{where}.ffn", len(heads))
    ranks = data.get("ranks")
    if ranks is not None:
        if not isinstance(ranks, dict):
            raise UserError(f"{where}.ranks must be an object {{group: [rank per layer]}}")
        for group, values in ranks.items():
            _int_list(values, f"{where}.ranks.{group}", len(heads))
    return data


def check_ranked_document(doc: Any, path: str) -> None:
    """Every entry of a ranked.json (or a bare subnet file) checked, whichever entry is picked."""
    if isinstance(doc, dict) and "subnets" not in doc and "heads" in doc:
        check_subnet_dict(doc, path)
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("subnets"), list):
        raise UserError(f"{path} has no 'subnets' list; is it a ranked.json written by `zerolm-prune rank`?")
    depth = None
    for i, entry in enumerate(doc["subnets"]):
        if not isinstance(entry, dict) or "subnet" not in entry:
            raise UserError(f"{path}: entry {i} has no 'subnet'; rewrite the file with `zerolm-prune rank`")
        sub = check_subnet_dict(entry["subnet"], f"{path}: subnets[{i}].subnet")
        if depth is not None and len(sub["heads"]) != depth:
            raise UserError(f"{path}: the subnets have different layer counts; one model per file")
        depth = len(sub["heads"])
        if "name" in entry:
            from .paths import check_name  # lazy: --help does not load paths (2 ms of regexes)

            check_name(entry["name"], f"{path}: subnets[{i}].name")
        for key in ("score", "params", "macs"):
            v = entry.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise UserError(f"{path}: subnets[{i}].{key} must be a number, not {type(v).__name__}")
    for key in ("model", "order", "orders_file", "space", "ranker"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise UserError(f"{path}: {key!r} must be a string, not {type(doc[key]).__name__}")
    if doc.get("orders_file"):  # a name next to the ranked file, never a path elsewhere
        from .paths import check_name

        check_name(doc["orders_file"], f"{path}: orders_file", any_characters=True)
        sidecar = Path(path).parent / doc["orders_file"]
        if sidecar.exists():
            orders = read_json_mapping(sidecar, "unit orders file")
            if not isinstance(orders.get("orders"), dict):
                raise UserError(f"{sidecar} is not a unit orders file written by `zerolm-prune rank`")


def read_ranked_file(spec: str) -> tuple[dict[str, Any] | Any, int]:
    """(document, number of layers) of ``ranked.json[#k]``: the whole file checked before use."""
    path, _, pick = str(spec).partition("#")
    doc = read_json(path, "subnet file")
    check_ranked_document(doc, path)
    subs = [doc] if "subnets" not in doc else [e["subnet"] for e in doc["subnets"]]
    if not subs:
        raise UserError(f"{path} lists no subnets; rerun `zerolm-prune rank` with a feasible budget")
    if pick and not re.fullmatch(r"\d{1,9}", pick):
        raise UserError(f"{spec!r}: the part after '#' must be an entry index such as #0")
    return doc, len(subs[0]["heads"])


# ---- checkpoints --------------------------------------------------------------------------------
_SAFETENSORS_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def check_safetensors(path: str | Path) -> None:
    """The header of a safetensors file is sane: size, JSON, dtypes, shapes and offsets that fit the
    file (a truncated or corrupt file otherwise crashes deep inside a loader)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise UserError(f"{path} is truncated (no safetensors header); copy the checkpoint again")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise UserError(f"{path} is not a valid safetensors file (header of {n} bytes in a {size}-byte file)")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UserError(f"{path} is not a valid safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} is not a valid safetensors file (header is not a mapping)")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        bad = f"{path} is corrupt or truncated (tensor {name!r}); copy the checkpoint again"
        if not isinstance(info, dict) or info.get("dtype") not in _SAFETENSORS_SIZES:
            raise UserError(bad)
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if (not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape + offsets)):
            raise UserError(bad)
        begin, end = offsets
        if not begin <= end <= data_len or end - begin != math.prod(shape) * _SAFETENSORS_SIZES[info["dtype"]]:
            raise UserError(bad)


#: config.json fields that must be positive whole numbers when present (any family we support)
_CONFIG_INTS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
                "vocab_size", "head_dim", "n_layer", "n_embd", "n_head", "n_inner", "max_position_embeddings",
                "n_positions")


def check_config_json(path: str | Path) -> dict[str, Any]:
    """config.json: a mapping, model_type a string, sizes positive whole numbers."""
    config = read_json_mapping(path, "model config")
    if "model_type" in config and not isinstance(config["model_type"], str):
        raise UserError(f"{path}: model_type must be a string")
    archs = config.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not all(isinstance(a, str) for a in archs)):
        raise UserError(f"{path}: architectures must be a list of class names")
    for key in _CONFIG_INTS:
        if config.get(key) is not None:
            whole(config[key], f"{path}: {key}", minimum=1, cap=MAX_LAYERS if key in ("num_hidden_layers", "n_layer")
                  else 10**9)
    return config


def check_model_folder(folder: str | Path) -> None:
    """A local checkpoint folder: its config.json and the header of every safetensors file."""
    folder = Path(folder)
    check_config_json(folder / "config.json")
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors(file)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = read_json_mapping(index, "safetensors index")
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise UserError(f"{index}: weight_map must map tensor names to file names")
        from .paths import confine  # lazy: --help does not load paths (2 ms of regexes)

        for name in set(weight_map.values()):
            if not confine(folder, name, f"{index}: weight_map").is_file():
                raise UserError(f"{index} names {name}, which is not in {folder}; copy the checkpoint again")


def env_threads(value: str) -> int:
    """$ZEROLM_PRUNE_THREADS: a whole number of threads."""
    try:
        return count(4096, 1, "ZEROLM_PRUNE_THREADS")(value)
    except argparse.ArgumentTypeError as err:
        raise UserError(f"ZEROLM_PRUNE_THREADS={value!r}: {err}") from None


def is_local_path(spec: str) -> bool:
    """True when MODEL names something on disk (a hub id never contains these forms)."""
    return os.path.lexists(os.path.expanduser(spec))
