"""Small torch surrogates of benchmark blocks, for the gradient baselines (SynFlow, SNIP).

Why a surrogate and not the full model: these proxies need a forward/backward pass, and the
benchmark rows (FlexiBERT mixers, adaptive embeddings, relative attention) have no stock module.
The surrogate keeps what gradients see at init on one token stream: each block is
``x + out(concat(value branches(x)))`` then ``x + FFN(x)`` (ReLU between FFN links). Query/key,
score and kernel matrices carry no gradient when all tokens are equal (SynFlow's all-ones input
gives uniform attention), so they are left out. Biases and LayerNorms are left out too (SynFlow
cannot pass an all-ones vector through a LayerNorm). Weights are drawn N(0, std^2) per matrix.
This is a documented approximation of the published proxies, not their reference code.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from .baselines import snip, synflow

if TYPE_CHECKING:  # pragma: no cover
    from .arch import Arch


def build_surrogate(arch: "Arch", seed: int = 0) -> "torch.nn.Module":
    gen = torch.Generator().manual_seed(int(seed))

    def linear(rows: int, cols: int, std: float) -> nn.Linear:
        lin = nn.Linear(cols, rows, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(rows, cols, generator=gen) * std)
        return lin

    class Block(nn.Module):
        def __init__(self, block):
            super().__init__()
            branches, out, ffn = [], None, []
            for m in block.matrices:
                if m.role == "branch":
                    branches.append(linear(m.rows, m.cols, m.std))
                elif m.role == "qkv":
                    branches.append(linear(m.rows // 3, m.cols, m.std))
                elif m.role == "out":
                    out = linear(m.rows, m.cols, m.std)
                elif m.role == "ffn":
                    ffn.append(linear(m.rows, m.cols, m.std))
            self.branches = nn.ModuleList(branches)
            self.out = out
            self.ffn = nn.ModuleList(ffn)

        def forward(self, x):
            if len(self.branches):
                a = torch.cat([b(x) for b in self.branches], dim=-1)
                x = x + (self.out(a) if self.out is not None else a)
            y = x
            for i, lin in enumerate(self.ffn):
                y = lin(y)
                if i < len(self.ffn) - 1:
                    y = torch.relu(y)
            return x + y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block(b) for b in arch.blocks)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    return Net()


def gradient_scores(arch: "Arch", seed: int = 0) -> dict[str, float]:
    """SynFlow and SNIP of the surrogate (SNIP on 8 random tokens with random regression targets)."""
    net = build_surrogate(arch, seed)
    h = arch.blocks[0].hidden
    gen = torch.Generator().manual_seed(int(seed) + 1)
    x = torch.randn(8, h, generator=gen)
    y = torch.randn(8, h, generator=gen)
    sf = synflow(net, (1, h))
    return {"synflow": math.log(sf) if sf > 0 else float("-inf"), "snip": snip(net, x, y)}


def expected_synflow(arch: "Arch") -> float:
    """log of the *expected* SynFlow score of the surrogate at init, in closed form.

    SynFlow's objective R = 1^T f(1) with every weight replaced by |w| is multilinear in the
    (independent) weight matrices, and ReLU is the identity on its all-positive signals, so
    E[R] is R computed with every matrix replaced by its mean E|w| = std * sqrt(2/pi): every
    signal stays a constant vector and the network collapses to scalars. The score of a matrix,
    sum |w * dR/dw|, equals R minus R without that matrix (R is affine in each matrix), and its
    expectation follows the same way. Exact in expectation; seconds for a whole benchmark
    instead of minutes of sampling (``gradient_scores`` samples the real thing).
    """
    mats = [(l, m) for l, m in arch.matrices() if m.role in ("branch", "qkv", "out", "ffn")]

    def total(skip: int | None) -> float:
        c = 1.0
        k = 0
        for l, block in enumerate(arch.blocks):
            h = block.hidden
            branch_sum, out_mu = 0.0, None
            ffn = []
            for m in block.matrices:
                if m.role not in ("branch", "qkv", "out", "ffn"):
                    continue
                mu = 0.0 if k == skip else m.std * math.sqrt(2 / math.pi)
                k += 1
                rows = m.rows // 3 if m.role == "qkv" else m.rows
                if m.role in ("branch", "qkv"):
                    branch_sum += rows * mu * m.cols * c
                elif m.role == "out":
                    out_mu = mu
                else:
                    ffn.append((mu, m.cols))
            if out_mu is not None:
                c = c + out_mu * branch_sum
            elif branch_sum:
                c = c + branch_sum / h  # a single h-wide branch (LT without output dense)
            y = c
            for mu, cols in ffn:
                y = mu * cols * y
            c = c + y
        return arch.blocks[-1].hidden * c

    r = total(None)
    score = sum(r - total(i) for i in range(len(mats)))
    return math.log(score) if score > 0 else float("-inf")
