"""Is there an access token in this text? Checked before anything is written (model cards, logs).

Why the old check was wrong: any ``hf_`` followed by 20 letters matched, so a source folder named
``/data/hf_smollm2copy...`` was refused as "looks like an access token". The real check is the
token itself: the values this machine would authenticate with ($HF_TOKEN, the ``hf auth login``
file) never appear in output. As a second net, a bare word of the exact shape of a Hugging Face
user token (``hf_`` + 34 letters/digits, not part of a path, not an existing file) is refused too.
"""

from __future__ import annotations

import os
import re

_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_TOKEN")
#: the shape of a user access token, as a whole word (not inside a path or a longer name)
_SHAPE = re.compile(r"(?<![\w./\\-])hf_[A-Za-z0-9]{34}(?![\w.-])")


def known_tokens() -> set[str]:
    """The tokens this process could use: environment variables and the stored login token."""
    found = {os.environ.get(name, "").strip() for name in _ENV}
    try:
        from huggingface_hub import get_token  # lazy: huggingface_hub only when the hub is asked

        found.add((get_token() or "").strip())
    except Exception:  # no hub library, unreadable token file: only the environment counts
        pass
    return {t for t in found if len(t) >= 8}


def contains_token(text: str, tokens: set[str] | None = None) -> bool:
    """True when ``text`` holds a real token, or a bare token-shaped word that names no file."""
    tokens = known_tokens() if tokens is None else tokens
    if any(t in text for t in tokens):
        return True
    return any(not os.path.exists(m.group(0)) for m in _SHAPE.finditer(text))
