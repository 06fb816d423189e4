"""File names for incident ids, and the one place a draft's folder is derived from an incident id.

An incident id comes from a manifest, a vendor or a ledger row and may hold anything: ``/``, spaces, dots,
thousands of bytes. ``safe_name`` must be injective — two ids sharing one folder would overwrite each other's
drafts — and stable: ids that were already safe keep the name they always had, so existing drafts and ledgers
keep working.

* An id made only of letters, digits, ``-``, ``_`` and ``.`` (not starting or ending with ``.`` or ``_``) and at
  most ``MAX_NAME_BYTES`` long is its own name, as before.
* Any other id is escaped: each other character becomes ``~`` and the upper-case hex of its UTF-8 bytes
  (``INC/7`` -> ``INC~2F7``, ``INC 7`` -> ``INC~207``, ``_x`` -> ``~5Fx``). ``~`` is never in a name of the first
  kind and is always escaped itself, so the escaping is reversible and no two ids share a name — not merely
  "unlikely to", as a short hash suffix would be against an id chosen to collide.
* A name that would still be longer than ``MAX_NAME_BYTES`` keeps a prefix and ends in ``~~`` and 24 hex digits
  of the id's sha256 (96 bits). ``~~`` appears in no escaped name, so long ids never meet short ones; two long ids
  meet only on a sha256 collision. The limit leaves room under the usual 255-byte file name limit for the
  ``.json`` suffix and ``write_atomic``'s temporary ``.<name>.json.XXXXXXXX.tmp``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

MAX_NAME_BYTES = 200
_HASH_HEX = 24
_SAFE_PUNCTUATION = "-_."


def _is_safe_char(char: str) -> bool:
    return char.isalnum() or char in _SAFE_PUNCTUATION


def _escape(char: str) -> str:
    return "".join(f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def safe_name(incident_id: str) -> str:
    """The file (or folder) name of an incident id; see the module docstring for why it looks like this."""
    unchanged = (
        incident_id
        and all(_is_safe_char(c) for c in incident_id)
        and incident_id[0] not in "._"
        and incident_id[-1] not in "._"
    )
    if unchanged:
        name = incident_id
    elif not incident_id:
        name = "~"  # the empty id; every other escaped name has hex after each ~
    else:
        last = len(incident_id) - 1
        name = "".join(
            c if _is_safe_char(c) and not (i in (0, last) and c in "._") else _escape(c)
            for i, c in enumerate(incident_id)
        )
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(incident_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    budget = MAX_NAME_BYTES - 2 - _HASH_HEX
    prefix = name.encode("utf-8")[:budget].decode("utf-8", "ignore")  # never half a character
    cut = prefix.rfind("~", max(len(prefix) - 2, 0))
    if cut != -1:  # never half an escape: "~2" or "~" at the end would read as part of the "~~" marker
        prefix = prefix[:cut]
    return f"{prefix}~~{digest}"


def read_no_follow(path: Path) -> bytes:
    """A regular file's bytes, never through a symbolic link (O_NOFOLLOW on the last component) and never
    blocking on a FIFO; anything else raises OSError. For stores other processes can write into (the landed
    Alertmanager groups), where a planted link would otherwise pull an outside file into a snapshot."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return handle.read()


def draft_file(out_dir: Path, incident_id: str, suffix: str) -> Path:
    """A one-off draft (``postmortem draft``, the draft_postmortem flow): ``<out_dir>/<name><suffix>``."""
    return out_dir / f"{safe_name(incident_id)}{suffix}"


def draft_folder(drafts_root: Path, incident_id: str) -> Path:
    """Where the sweep keeps an incident's drafts (``v<N>.md``/``.json``, ``latest.md``, ``published.json``).
    Everything that reads or writes a draft of an incident finds it here."""
    return drafts_root / safe_name(incident_id)


def snapshot_folder(home: Path, incident_id: str) -> Path:
    """Where the sweep keeps an incident's input snapshots (one sub-folder per content hash)."""
    return home / "snapshots" / safe_name(incident_id)
