"""The training text of a recovery run and the teacher's targets on it, cached on disk.

Self-generated text (LLM-QAT, arXiv 2305.17888): each sequence starts at BOS and a uniformly random
token, then the teacher samples with top-k from its own distribution, in batches with a KV cache.
Each sampling step already computes the teacher's full next-token distribution at that position,
so its top-k log-probs are kept at no extra cost: training then needs no teacher forward at all
(benchmarks/RECOVERY.md measures what that saves). Sequences that loop (few distinct 4-grams) are
dropped and replaced.

Generation writes one shard per batch, each seeded by (seed, shard index), into a cache folder
keyed by the teacher's weights and every setting that changes the text: a rerun (or a run killed
mid-generation) reuses the finished shards and produces exactly the same corpus.
User text (``--data``: a .txt or .jsonl file, or a hub dataset id) is cut into ``seq_len`` rows and
gets its teacher top-k from one cached forward pass.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..assets import cache_dir
from ..atomic import _write_via, write_text
from ..errors import UserError
from .config import RecoverConfig

CORPUS_FORMAT = 1


@dataclass
class Corpus:
    """Token rows and (optionally) the teacher's top-k log-probs at every position but the last."""

    ids: torch.Tensor  # [rows, seq_len] int64
    topk_idx: torch.Tensor | None = None  # [rows, seq_len - 1, k] int64
    topk_logp: torch.Tensor | None = None  # [rows, seq_len - 1, k] float32
    dropped: int = 0  # self-generated sequences dropped as degenerate

    @property
    def tokens(self) -> int:
        return int(self.ids.numel())

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def head(self, rows: int) -> "Corpus":
        cut = slice(0, rows)
        return Corpus(self.ids[cut], None if self.topk_idx is None else self.topk_idx[cut],
                      None if self.topk_logp is None else self.topk_logp[cut], self.dropped)

    @staticmethod
    def cat(parts: list["Corpus"]) -> "Corpus":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise UserError("the recovery corpus is empty; raise --tokens")
        cached = all(p.topk_idx is not None for p in parts)
        return Corpus(torch.cat([p.ids for p in parts]),
                      torch.cat([p.topk_idx for p in parts]) if cached else None,
                      torch.cat([p.topk_logp for p in parts]) if cached else None,
                      sum(p.dropped for p in parts))


class DistillDataset(torch.utils.data.Dataset):
    """Rows of a ``Corpus`` as the dicts ``DistillTrainer.compute_loss`` reads."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = {"input_ids": self.corpus.ids[i]}
        if self.corpus.topk_idx is not None:
            row["topk_idx"] = self.corpus.topk_idx[i]
            row["topk_logp"] = self.corpus.topk_logp[i]
        return row


def teacher_fingerprint(model: Any) -> str:
    """A hash of the config and the first values of every tensor: another checkpoint (or the same
    one edited in place) gets another corpus cache."""
    digest = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().reshape(-1)[:256].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def distinct_4gram_share(row: torch.Tensor) -> float:
    """Share of a row's 4-grams that are distinct (1.0 = no repetition; loops drive it to ~0)."""
    values = row.tolist()
    grams = [tuple(values[i:i + 4]) for i in range(len(values) - 3)]
    return len(set(grams)) / max(1, len(grams))


def _first_tokens(config: Any, tokenizer: Any, rows: int, gen: torch.Generator) -> torch.Tensor:
    """BOS (when the model has one) then a uniformly random non-special token per row."""
    vocab = int(config.vocab_size)
    special = set(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer is not None else set()
    pool = torch.tensor([i for i in range(vocab) if i not in special], dtype=torch.long)
    first = pool[torch.randint(len(pool), (rows, 1), generator=gen)]
    bos = config.bos_token_id
    if isinstance(bos, list):
        bos = bos[0]
    if bos is None:
        return first
    return torch.cat([torch.full((rows, 1), int(bos), dtype=torch.long), first], dim=1)


@torch.no_grad()
def sample_batch(teacher: Any, tokenizer: Any, *, rows: int, length: int, seed: int, sample_top_k: int,
                 keep_top_k: int, device: Any = None, on_step: Any = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``rows`` x ``length`` sampled tokens and, for ``keep_top_k`` > 0, the teacher's top-k
    log-probs at positions 0..length-2 (what it predicted for each next token)."""
    gen = torch.Generator().manual_seed(seed)
    device = device or next(teacher.parameters()).device
    ids = _first_tokens(teacher.config, tokenizer, rows, gen)
    out = model_out = teacher(input_ids=ids.to(device), use_cache=True)
    if on_step is not None:
        on_step(rows * ids.shape[1])
    idx_steps, logp_steps = [], []
    for pos in range(ids.shape[1] - 1):  # the prompt's own positions: targets come from one pass
        if keep_top_k:
            logp = torch.log_softmax(model_out.logits[:, pos].float(), dim=-1)
            top = torch.topk(logp, keep_top_k, dim=-1)
            idx_steps.append(top.indices.cpu())
            logp_steps.append(top.values.cpu())
    while ids.shape[1] < length:
        logits = out.logits[:, -1].float()
        if keep_top_k:
            top = torch.topk(torch.log_softmax(logits, dim=-1), keep_top_k, dim=-1)
            idx_steps.append(top.indices.cpu())
            logp_steps.append(top.values.cpu())
        if sample_top_k:
            kth = torch.topk(logits, sample_top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = torch.multinomial(torch.softmax(logits, dim=-1).cpu(), 1, generator=gen)
        ids = torch.cat([ids, nxt], dim=1)
        if on_step is not None:
            on_step(rows)
        out = teacher(input_ids=nxt.to(device), use_cache=True, **_cache_kwargs(teacher, out))
    if not keep_top_k:
        return ids, None, None
    return ids, torch.stack(idx_steps, 1), torch.stack(logp_steps, 1)


def _cache_kwargs(model: Any, out: Any) -> dict[str, Any]:
    """The KV cache of the last step under the name this transformers takes (``cache`` from 5.x
    on, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    if cache is not None:
        return {"cache": cache}
    return {"past_key_values": out.past_key_values}


def corpus_cache_root() -> Path:
    return cache_dir() / "recover-corpus"


def _cache_folder(kind: str, key: dict[str, Any], root: Path | None) -> Path:
    text = json.dumps({"format": CORPUS_FORMAT, "kind": kind, **key}, sort_keys=True)
    folder = (root or corpus_cache_root()) / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "key.json").is_file():
        write_text(folder / "key.json", text + "\n")
    return folder


def _save_shard(path: Path, part: Corpus) -> None:
    tensors = {"ids": part.ids.to(torch.int32).contiguous(), "dropped": torch.tensor([part.dropped])}
    if part.topk_idx is not None:
        tensors["topk_idx"] = part.topk_idx.to(torch.int32).contiguous()
        tensors["topk_logp"] = part.topk_logp.to(torch.float16).contiguous()
    _write_via(path, lambda tmp: save_file(tensors, tmp), suffix=".safetensors")


def _load_shard(path: Path) -> Corpus:
    t = load_file(str(path))
    has = "topk_idx" in t
    return Corpus(t["ids"].long(), t["topk_idx"].long() if has else None,
                  t["topk_logp"].float() if has else None, int(t["dropped"][0]))


def self_generated(teacher: Any, tokenizer: Any, config: RecoverConfig, tokens: int, *, cache_root: Path | None = None,
                   progress: bool = True, log=print) -> Corpus:
    """At least ``tokens`` self-generated tokens (whole rows), from the cache where it has them."""
    if tokens <= 0:
        return Corpus(torch.zeros((0, config.seq_len), dtype=torch.long))
    key = {"teacher": teacher_fingerprint(teacher), "seq_len": config.seq_len, "seed": config.seed,
           "sample_top_k": config.sample_top_k, "teacher_top_k": config.teacher_top_k, "gen_batch": config.gen_batch,
           "min_distinct_4grams": config.min_distinct_4grams}
    folder = _cache_folder("selfgen", key, cache_root)
    rows_needed = math.ceil(tokens / config.seq_len)
    parts: list[Corpus] = []
    kept = 0
    # counts sampled tokens (a shard is gen_batch whole rows; looping rows are dropped and resampled)
    bar = tqdm(total=math.ceil(rows_needed / config.gen_batch) * config.gen_batch * config.seq_len,
               desc="generating corpus", unit="tok", unit_scale=True, disable=not progress, dynamic_ncols=True)
    shard = 0
    while kept < rows_needed:
        path = folder / f"shard-{shard:05d}.safetensors"
        if path.is_file():
            part = _load_shard(path)
            bar.update(config.gen_batch * config.seq_len)
        else:
            ids, idx, logp = sample_batch(teacher, tokenizer, rows=config.gen_batch, length=config.seq_len,
                                          seed=config.seed * 1_000_003 + shard, sample_top_k=config.sample_top_k,
                                          keep_top_k=config.teacher_top_k, on_step=bar.update)
            keep = torch.tensor([distinct_4gram_share(r) >= config.min_distinct_4grams for r in ids])
            part = Corpus(ids[keep], None if idx is None else idx[keep], None if logp is None else logp[keep],
                          int((~keep).sum()))
            _save_shard(path, part)
            part = _load_shard(path)  # what a rerun reads (fp16 log-probs): a resumed run trains on the same
        parts.append(part)
        kept += len(part)
        shard += 1
        if shard > 20 + 20 * rows_needed // config.gen_batch:
            raise UserError("the teacher's samples keep looping (dropped as degenerate); lower min_distinct_4grams")
    bar.close()
    corpus = Corpus.cat(parts).head(rows_needed)
    if corpus.dropped:
        log(f"      dropped {corpus.dropped} looping sequences (distinct 4-grams < {config.min_distinct_4grams})")
    return corpus


def read_user_text(data: str) -> list[str]:
    """Documents of ``--data``: a .txt file (one document), a .jsonl file (its "text" field, or the
    first string field of each line) or a hub dataset id (its "text" column, split train)."""
    path = Path(data).expanduser()
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):
            docs = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise UserError(f"{path}:{n}: not a JSON line") from None
                text = row.get("text") if isinstance(row, dict) else None
                if text is None and isinstance(row, dict):
                    text = next((v for v in row.values() if isinstance(v, str)), None)
                if isinstance(text, str) and text.strip():
                    docs.append(text)
            return docs
        return [path.read_text(encoding="utf-8", errors="replace")]
    if path.exists() or data.startswith((".", "/", "~")) or data.count("/") > 1:
        raise UserError(f"--data {data}: not a readable .txt/.jsonl file or a hub dataset id")
    return _hub_text(data)


def _hub_text(data: str) -> list[str]:
    try:
        import datasets  # lazy: datasets is slow to import; only reading saved data needs it

        ds = datasets.load_dataset(data, split="train")
    except Exception as err:  # noqa: BLE001 - any hub/offline failure is the user's to fix
        raise UserError(f"--data {data}: could not load the dataset ({str(err).splitlines()[0]}); "
                        "offline, pass a local .txt or .jsonl file") from None
    if "text" not in ds.column_names:
        raise UserError(f"--data {data}: no 'text' column (columns: {', '.join(ds.column_names)})")
    return [t for t in ds["text"] if isinstance(t, str) and t.strip()]


def user_rows(tokenizer: Any, docs: list[str], seq_len: int, tokens: int) -> torch.Tensor:
    """Documents joined by EOS and cut into full ``seq_len`` rows, the first ``tokens`` worth."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    want = math.ceil(tokens / seq_len) * seq_len
    for doc in docs:
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        if len(stream) >= want:
            break
    rows = len(stream) // seq_len
    if rows == 0:
        raise UserError(f"--data holds fewer than --seq-len ({seq_len}) tokens")
    return torch.tensor(stream[:rows * seq_len], dtype=torch.long).reshape(rows, seq_len)[: math.ceil(tokens / seq_len)]


@torch.no_grad()
def teacher_top_k(teacher: Any, ids: torch.Tensor, k: int, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's top-k log-probs at positions 0..seq_len-2 of given rows (one forward pass)."""
    device = next(teacher.parameters()).device
    idx, logp = [], []
    for start in range(0, len(ids), batch):
        logits = teacher(input_ids=ids[start:start + batch].to(device)).logits[:, :-1].float()
        top = torch.topk(torch.log_softmax(logits, dim=-1), k, dim=-1)
        idx.append(top.indices.cpu())
        logp.append(top.values.cpu())
    return torch.cat(idx), torch.cat(logp)


def user_corpus(teacher: Any, tokenizer: Any, config: RecoverConfig, tokens: int, *, cache_root: Path | None = None,
                log=print) -> Corpus:
    if tokens <= 0 or config.data is None:
        return Corpus(torch.zeros((0, config.seq_len), dtype=torch.long))
    rows = user_rows(tokenizer, read_user_text(config.data), config.seq_len, tokens)
    if rows.numel() < tokens:
        log(f"      --data holds {rows.numel()} tokens in full rows, fewer than the {tokens} asked for; using all")
    if not config.teacher_top_k:
        return Corpus(rows)
    digest = hashlib.sha256(rows.numpy().tobytes()).hexdigest()[:20]
    key = {"teacher": teacher_fingerprint(teacher), "rows": digest, "teacher_top_k": config.teacher_top_k}
    path = _cache_folder("user", key, cache_root) / "targets.safetensors"
    if path.is_file():
        return _load_shard(path)
    idx, logp = teacher_top_k(teacher, rows, config.teacher_top_k)
    _save_shard(path, Corpus(rows, idx, logp))
    return _load_shard(path)  # the stored (fp16) targets, as every rerun will read them


def build_corpus(teacher: Any, tokenizer: Any, config: RecoverConfig, *, cache_root: Path | None = None,
                 progress: bool = True, log=print) -> Corpus:
    """User text (its share of ``config.tokens``) plus self-generated text for the rest."""
    user_tokens = round(config.tokens * config.user_fraction)
    user = user_corpus(teacher, tokenizer, config, user_tokens, cache_root=cache_root, log=log)
    own = self_generated(teacher, tokenizer, config, config.tokens - user_tokens,
                         cache_root=cache_root, progress=progress, log=log)
    return Corpus.cat([user, own])
