"""safetensors I/O without whole-file buffers: read one tensor at a time, write each tensor
straight from its storage into its place in the file.

``safetensors.torch.save_file`` serializes every tensor to ``bytes`` before writing (one more full
copy of the model), and ``safe_open`` memory-maps the input, whose touched pages stay resident
until the file closes. Pruning should hold about one model; only the header (shapes and offsets,
known in advance) is built up front.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import torch

from .errors import UserError

_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _torch_dtype(code: str):
    if code not in _DTYPES:
        raise UserError(f"safetensors dtype {code} is not supported for streaming; use --in-memory")
    return getattr(torch, _DTYPES[code])


def _dtype_code(dtype) -> str:
    name = str(dtype).replace("torch.", "")
    for code, torch_name in _DTYPES.items():
        if torch_name == name:
            return code
    raise UserError(f"cannot write dtype {dtype} to safetensors")


def read_safetensors_header(path: str | Path) -> tuple[dict[str, dict[str, Any]], int]:
    """(tensor name -> {dtype, shape, data_offsets}, byte offset of the data section)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


class SafetensorsReader:
    """Reads one tensor at a time into fresh memory (no mmap, nothing else stays resident)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.header, self.data_start = read_safetensors_header(self.path)
        self._fh = open(self.path, "rb")

    def keys(self) -> list[str]:
        return list(self.header)

    def get(self, name: str):
        info = self.header[name]
        begin, end = info["data_offsets"]
        dtype = _torch_dtype(info["dtype"])
        if end == begin:
            return torch.empty(info["shape"], dtype=dtype)
        buf = bytearray(end - begin)
        self._fh.seek(self.data_start + begin)
        self._fh.readinto(buf)
        return torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "SafetensorsReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_safetensors(folder: Path, entries: list[tuple[str, tuple[int, ...], Any, Any]], *,
                      max_shard_bytes: int = 5 * 1024**3) -> list[str]:
    """Write ``(name, shape, dtype, produce)`` entries, calling ``produce()`` for one tensor at a time.

    Shards of at most ``max_shard_bytes`` (``model.safetensors`` when one suffices, else
    ``model-0000k-of-0000n.safetensors`` + index, as transformers writes them). Returns file names.
    """
    sized = []
    for name, shape, dtype, produce in entries:
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        sized.append((name, tuple(int(d) for d in shape), dtype, produce, nbytes))
    shards: list[list[tuple]] = [[]]
    used = 0
    for item in sized:
        if shards[-1] and used + item[4] > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(item)
        used += item[4]
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{k:05d}-of-{len(shards):05d}.safetensors" for k in range(1, len(shards) + 1)])
    weight_map: dict[str, str] = {}
    total = 0
    for file_name, shard in zip(names, shards):
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape, dtype, _produce, nbytes in shard:
            header[name] = {"dtype": _dtype_code(dtype), "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file_name
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(folder / file_name, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw)))
            fh.write(raw)
            for name, shape, dtype, produce, nbytes in shard:
                tensor = produce()
                if tuple(tensor.shape) != shape or tensor.dtype != dtype:
                    raise RuntimeError(f"{name}: produced {tuple(tensor.shape)} {tensor.dtype}, planned {shape} {dtype}")
                if nbytes:
                    fh.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
                del tensor
        total += offset
    if len(names) > 1:
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    return names


