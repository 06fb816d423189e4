"""The per-installation key that signs section markers in drafts (see pipeline.render and pipeline.redraft).

A re-draft overwrites a section it believes the pipeline wrote and keeps one it believes a person edited; that
belief comes from the section markers. Markers are plain text in a file people edit and in drafts pasted into
Slack, Jira and wikis, so a marker is only believed when it carries an HMAC-SHA256 made with this key: nobody
without the key file (a chat message, an alert label, a model's prose, a person pasting text) can make one.

The key is 32 random bytes in ``settings.section_key_file`` (default ``HOME/keys/section.key``), created on
first use with mode 0600 in a 0700 directory, published with ``link`` so two processes starting at once agree on
one key. A key file that others can read, that is a symlink, or that is not 32 bytes is refused: a leaked or
replaced key would let anyone forge markers. Losing the key is safe: every existing draft then counts as edited
by a person (nothing is overwritten; new facts arrive as suggestions) and the new key signs from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.atomic import fsync_dir
from pipeline.errors import ConfigError

KEY_BYTES = 32
_MAC_HEX = 32  # 128 bits of the HMAC-SHA256 output: unguessable, and short enough for a comment line
_DOMAIN = b"postmortem-pipeline section marker v2"


@dataclass(frozen=True)
class SectionKey:
    """The secret (never shown in reprs or logs) and the MAC over one marker's fields."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigError(f"a section key needs at least 16 bytes, got {len(self.secret)}")

    def mac(self, document: str, kind: str, *fields: str) -> str:
        """The MAC of a marker: domain, the document it belongs to (the incident id), its kind and fields, each
        length-prefixed so no two different field lists share an input."""
        digest = hmac.new(self.secret, _DOMAIN, hashlib.sha256)
        for part in (document, kind, *fields):
            raw = part.encode("utf-8", "surrogatepass")
            digest.update(len(raw).to_bytes(8, "big") + raw)
        return digest.hexdigest()[:_MAC_HEX]

    def verify(self, mac: str, document: str, kind: str, *fields: str) -> bool:
        return hmac.compare_digest(mac.encode("ascii", "replace"), self.mac(document, kind, *fields).encode())


def load_section_key(path: Path) -> SectionKey:
    """The key at ``path``, created (32 random bytes, 0600, directory 0700) when absent."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # never replaces: a key another process published wins
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return _read(path)


def _read(path: Path) -> SectionKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigError(
            f"section key file {path} cannot be read ({exc.strerror}); it must be a regular file"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"section key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"section key file {path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                "anyone who can read it can forge section markers; run chmod 600 on it"
            )
        secret = handle.read(KEY_BYTES + 1)
    if len(secret) != KEY_BYTES:
        raise ConfigError(f"section key file {path} must hold exactly {KEY_BYTES} bytes, found {len(secret)}")
    return SectionKey(secret)
