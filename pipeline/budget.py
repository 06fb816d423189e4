"""Token counting with tiktoken, offline: the vocabularies come from `postmortem assets install`."""

from __future__ import annotations

import os
from functools import lru_cache

import tiktoken

from pipeline.errors import AssetError
from pipeline.settings import Settings

DEFAULT_ENCODING = "o200k_base"


@lru_cache(maxsize=4)
def _encoding(name: str, cache_dir: str) -> tiktoken.Encoding:
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    return tiktoken.get_encoding(name)


def encoding(settings: Settings, name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    from pipeline.assets import tiktoken_status

    status = {enc: ok for enc, ok, _ in tiktoken_status(settings)}
    if not status.get(name):
        raise AssetError(f"tokenizer vocabulary {name} is not installed: run `postmortem assets install`")
    return _encoding(name, str(settings.tiktoken_cache_dir))


def count_tokens(text: str, settings: Settings, name: str = DEFAULT_ENCODING) -> int:
    return len(encoding(settings, name).encode(text, disallowed_special=()))
