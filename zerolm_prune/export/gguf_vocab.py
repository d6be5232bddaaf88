"""Tokenizer metadata of a GGUF file, written from the model's own tokenizer files.

Why not llama.cpp's converter: it picks the pre-tokenizer by hashing the token ids of a test
string against a table of known hub models, and for Deci models it expects the Llama
sentencepiece vocabulary, so a pruned SmolLM2 (GPT-2-style BPE) under ``deci`` fails there.
Here the pre-tokenizer is read from ``tokenizer.json`` itself and mapped to the llama.cpp
pre-tokenizer that splits text the same way; a tokenizer we cannot map is refused in one line
rather than written with a pre-tokenizer that would silently tokenize differently.
gguf-py's own helpers do the rest: ``BpeVocab`` / ``SentencePieceVocab`` for the token lists and
``SpecialVocab`` for merges, special token ids, add-BOS/EOS flags and the chat template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf

from ..errors import UserError

#: tokenizer.json pre-tokenizers (as a canonical tuple of steps) -> llama.cpp's name for the same split.
#: ``smollm``: digits one by one, then GPT-2's byte-level regex (SmolLM, SmolLM2, StarCoder-style);
#: ``gpt-2``: GPT-2's byte-level regex alone.
KNOWN_PRE_TOKENIZERS: dict[tuple[str, ...], str] = {
    ("Digits(individual)", "ByteLevel(regex)"): "smollm",
    ("ByteLevel(regex)",): "gpt-2",
}


def _pre_steps(pre: dict[str, Any] | None) -> tuple[str, ...]:
    """A tokenizer.json ``pre_tokenizer`` as a tuple of step names with the options that change the split."""
    if not pre:
        return ()
    if pre.get("type") == "Sequence":
        return tuple(step for item in pre.get("pretokenizers", []) for step in _pre_steps(item))
    kind = pre.get("type", "?")
    if kind == "Digits":
        return ("Digits(individual)" if pre.get("individual_digits") else "Digits",)
    if kind == "ByteLevel":
        if pre.get("add_prefix_space"):
            return ("ByteLevel(prefix-space)",)
        return ("ByteLevel(regex)" if pre.get("use_regex", True) else "ByteLevel",)
    return (kind,)


def bpe_pre_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's pre-tokenizer name for a GPT-2-style BPE ``tokenizer.json``; UserError if none fits."""
    if tokenizer_json.get("normalizer"):
        raise UserError(f"the tokenizer has a normalizer ({tokenizer_json['normalizer'].get('type')}); "
                        "GGUF export supports byte-level BPE tokenizers without one, or sentencepiece (tokenizer.model)")
    steps = _pre_steps(tokenizer_json.get("pre_tokenizer"))
    name = KNOWN_PRE_TOKENIZERS.get(steps)
    if name is None:
        raise UserError(f"no llama.cpp pre-tokenizer known to split text like this tokenizer ({' + '.join(steps) or 'none'}); "
                        f"GGUF export knows: {', '.join(' + '.join(k) for k in KNOWN_PRE_TOKENIZERS)}")
    return name


def _pad(tokens: list[bytes], scores: list[float], types: list[int], n_vocab: int) -> None:
    """Pad the token list to the embedding's row count as llama.cpp's converter does ([PADi], unused)."""
    if len(tokens) > n_vocab:
        raise UserError(f"the tokenizer has {len(tokens)} tokens but the model's embedding only {n_vocab} rows")
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)


def _add_bpe(writer: gguf.GGUFWriter, folder: Path, n_vocab: int) -> None:
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    pre = bpe_pre_name(data)
    try:
        vocab = gguf.vocab.BpeVocab(folder)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{folder}: not a byte-level BPE tokenizer gguf-py can read ({err})") from None
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text.encode("utf-8") if isinstance(text, str) else text)
        scores.append(score)
        types.append(kind)
    # tokens the tokenizer declares as added: special ones are control tokens (never produced by
    # splitting text), the others user-defined, as llama.cpp's converter marks them
    index = {t: i for i, t in enumerate(tokens)}
    for added in data.get("added_tokens") or []:
        i = index.get(added["content"].encode("utf-8"))
        if i is not None:
            types[i] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    _pad(tokens, scores, types, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab).add_to_gguf(writer, quiet=True)


def _add_sentencepiece(writer: gguf.GGUFWriter, folder: Path, n_vocab: int) -> None:
    try:
        vocab = gguf.vocab.SentencePieceVocab(folder)
    except RuntimeError as err:  # gguf-py says "sentencepiece is not installed"
        raise UserError(f"{folder / 'tokenizer.model'}: {err}; pip install sentencepiece to export it") from None
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    _pad(tokens, scores, types, n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=False, n_vocab=n_vocab).add_to_gguf(writer, quiet=True)


def add_tokenizer(writer: gguf.GGUFWriter, folder: str | Path, n_vocab: int) -> str:
    """Write the tokenizer in ``folder`` (tokenizer.model, else tokenizer.json) into ``writer``;
    returns which kind it was (``"sentencepiece"`` or ``"bpe"``)."""
    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        _add_sentencepiece(writer, folder, n_vocab)
        return "sentencepiece"
    if (folder / "tokenizer.json").is_file():
        _add_bpe(writer, folder, n_vocab)
        return "bpe"
    raise UserError(f"{folder}: no tokenizer.model or tokenizer.json to write into the GGUF file")
