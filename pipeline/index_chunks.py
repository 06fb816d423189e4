"""Chunking for the similar-incident index: one chunk per section, or several where a section is longer than the
embedding model's window, measured in tiktoken tokens (LangChain's RecursiveCharacterTextSplitter)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import tiktoken

from pipeline.errors import AssetError
from pipeline.index_docs import IndexDocument
from pipeline.settings import Settings

# all-MiniLM-L6-v2 reads 256 word pieces; o200k tokens run ~10-30% fewer than word pieces on incident prose, so a
# 200-token chunk (plus the title line each chunk is embedded with) stays inside the window.
CHUNK_TOKENS = 200
CHUNK_OVERLAP = 30
# tiktoken's cache keys (sha1 of the vocabulary URL); pipeline.assets installs these files.
_VOCAB_KEYS = {
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
}


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    incident_id: str
    section: str
    index: int  # position within its section
    text: str  # the stored text (shown as the snippet)

    def embed_text(self, title: str) -> str:
        """What the embedder and BM25 see: the title gives every chunk its incident's context."""
        return f"{title}\n{self.text}"


# --- chunking -----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _encoding(name: str, cache_dir: str) -> tiktoken.Encoding:
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    return tiktoken.get_encoding(name)


def token_encoding(settings: Settings) -> tiktoken.Encoding:
    """o200k_base (cl100k_base if only that one is installed), read from the offline cache."""
    for name, key in _VOCAB_KEYS.items():
        if (settings.tiktoken_cache_dir / key).is_file():
            return _encoding(name, str(settings.tiktoken_cache_dir))
    raise AssetError(
        f"no tokenizer vocabulary in {settings.tiktoken_cache_dir}: run `postmortem assets install` "
        "(the index measures chunks in tiktoken tokens)"
    )


def chunk_id(incident_id: str, version: str, section: str, index: int) -> str:
    digest = hashlib.blake2b(f"{incident_id}\x1f{version}\x1f{section}\x1f{index}".encode(), digest_size=10)
    return f"ch_{digest.hexdigest()}"


def chunk_document(doc: IndexDocument, version: str, encoding: tiktoken.Encoding) -> list[Chunk]:
    """One chunk per section, or several (CHUNK_TOKENS each, CHUNK_OVERLAP overlap) where a section is long."""

    def length(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    splitter: Any = None
    chunks: list[Chunk] = []
    for section in doc.sections:
        if length(section.text) <= CHUNK_TOKENS:
            parts = [section.text]
        else:
            if splitter is None:
                from langchain_text_splitters import RecursiveCharacterTextSplitter  # ~1 s to import: only if needed

                splitter = RecursiveCharacterTextSplitter(
                    chunk_size=CHUNK_TOKENS,
                    chunk_overlap=CHUNK_OVERLAP,
                    length_function=length,
                    separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
                    keep_separator="end",
                )
            parts = splitter.split_text(section.text)
        for index, part in enumerate(p.strip() for p in parts if p.strip()):
            chunks.append(
                Chunk(
                    chunk_id(doc.incident_id, version, section.name, index), doc.incident_id, section.name, index, part
                )
            )
    return chunks
