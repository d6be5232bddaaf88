"""Benchmark architectures as lists of block matrices: all a data-free proxy needs at init.

Why not build Hugging Face models: the benchmark rows are heterogeneous (per-layer heads, FFN
widths, token mixers) and a proxy at random init only sees matrix shapes and init std. A
``Matrix`` records both; capacity is drawn from its exact distribution (see ``draw_sq_mass``),
and the gradient baselines run on small surrogates built from the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Matrix:
    """One weight matrix of a block: ``rows x cols`` (out x in), i.i.d. N(0, std^2) at init.

    ``module`` is ``"attn"`` (token mixer) or ``"ffn"``; ``role`` says where it sits for the
    gradient surrogates: ``branch`` (token-mixer value path, outputs concatenated), ``out``
    (mixer output projection), ``q``/``k`` (query/key; ``qk`` a matrix between them), ``qkv``
    (fused q/k/v: its value third is a branch), ``ffn`` (a link of the FFN chain) or ``side``
    (other kernels). Query/key matrices carry no gradient at uniform mixing (surrogates skip them).
    """

    module: str
    rows: int
    cols: int
    std: float = 0.02
    role: str = "side"
    bias: bool = True

    @property
    def size(self) -> int:
        return self.rows * self.cols


@dataclass
class Block:
    hidden: int
    heads: int
    matrices: list[Matrix]
    mixer: str = "SDP"


@dataclass
class Arch:
    """One benchmark row: its blocks, its label (higher is better) and its size counts."""

    id: Any
    label: float
    hidden: int
    blocks: list[Block]
    params: int  # total, as the reading builds it
    nonembedding_params: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def matrices(self):
        for i, block in enumerate(self.blocks):
            for m in block.matrices:
                yield i, m


def block_params(block: Block, *, norms: int = 2) -> int:
    """Matrices + biases + ``norms`` LayerNorms (weight and bias) of one block."""
    total = sum(m.size + (m.rows if m.bias else 0) for m in block.matrices)
    return total + norms * 2 * block.hidden


def draw_sq_mass(matrices: list[Matrix], rng: np.random.Generator) -> np.ndarray:
    """Squared Frobenius mass of each matrix at init: exactly ``std^2 * chi2(rows * cols)``."""
    df = np.array([m.size for m in matrices], dtype=np.float64)
    std = np.array([m.std for m in matrices], dtype=np.float64)
    return std * std * rng.chisquare(df)


def draw_abs_mass(matrices: list[Matrix], rng: np.random.Generator) -> np.ndarray:
    """Sum |w| of each matrix at init (normal approximation of a sum of >= 1e3 half-normals)."""
    n = np.array([m.size for m in matrices], dtype=np.float64)
    std = np.array([m.std for m in matrices], dtype=np.float64)
    mean = n * std * np.sqrt(2 / np.pi)
    sd = np.sqrt(n) * std * np.sqrt(1 - 2 / np.pi)
    return mean + sd * rng.standard_normal(len(matrices))


def circuit_capacity(block: Block) -> dict[str, float]:
    """Expected capacity at init of the end-to-end linear maps a block adds to the residual stream.

    Following the transformer-circuits view (Elhage et al., 2021), a block acts on the residual
    stream through its QK circuit ``W_Q^T [M] W_K`` (d x d), its OV circuit ``W_O W_V`` (d x d,
    one term per value branch) and its FFN chain ``W_k ... W_1`` (d x d, activations dropped).
    For independent N(0, std_i^2) factors ``E||A_k ... A_1||_F^2 = prod(std_i^2) * d * prod(inner
    widths) * d``; ZeroLM's capacity divides by min(d, d) = d. A mixer without an output matrix
    (the proxy code's LT layers) contributes its single matrix's capacity.
    """
    d = block.hidden
    by_role: dict[str, list[Matrix]] = {}
    for m in block.matrices:
        by_role.setdefault(m.role, []).append(m)
    qk = 0.0
    if "qkv" in by_role:
        m = by_role["qkv"][0]
        w = m.rows // 3
        qk = m.std ** 4 * w * d
        branches = [(w, m.std)]
    else:
        branches = [(m.rows, m.std) for m in by_role.get("branch", [])]
        if "q" in by_role and "k" in by_role:
            q, k = by_role["q"][0], by_role["k"][0]
            qk = q.std ** 2 * k.std ** 2 * q.rows * d
            for mid in by_role.get("qk", []):
                qk *= mid.std ** 2 * mid.cols
    out = by_role.get("out", [])
    if out:
        ov = sum(out[0].std ** 2 * s ** 2 * r * d for r, s in branches)
    else:
        ov = sum(s ** 2 * max(r, d) for r, s in branches)
    ffn = by_role.get("ffn", [])
    chain = 0.0
    if ffn:
        chain = d  # ||.||^2 / d of a d x d product: d * prod(inner widths) * prod(std^2)
        for m in ffn:
            chain *= m.std ** 2
        for m in ffn[:-1]:
            chain *= m.rows
    return {"qk": qk, "ov": ov, "ffn": chain}
