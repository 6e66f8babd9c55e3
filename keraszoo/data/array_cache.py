"""Arrays computed once and kept on disk (a frozen network's outputs), checked before every use.

A cache entry is ``<stem>.npz`` (the arrays, uncompressed) and ``<stem>.json`` beside it: the key it was
computed for, the arrays' shapes and dtypes, its size and its SHA-256. The JSON is written last, so an
entry without one was cut short. On every use the key and the checksum are compared: an entry computed
for something else (stale) or whose bytes changed (damaged) is said in one line and computed again; it is
never used silently. Entries are only ever replaced by this module, under their own names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMAT = 1  # bumped when what is stored changes meaning: every older entry is then stale


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(2**24), b""):
            digest.update(block)
    return digest.hexdigest()


def check(stem: Path, key: dict) -> str | None:
    """Why the entry ``stem`` cannot be used for ``key`` (None: it can)."""
    data, meta = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if not data.is_file() and not meta.is_file():
        return "missing"
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError):
        return "damaged (its description is missing or unreadable: the write was cut short)"
    if recorded.get("format") != FORMAT or recorded.get("key") != key:
        return f"stale (computed for {recorded.get('key')}, format {recorded.get('format')})"
    if not data.is_file() or data.stat().st_size != recorded.get("bytes") or _sha256(data) != recorded.get("sha256"):
        return "damaged (its bytes do not match their checksum)"
    return None


def cached_arrays(folder: str | os.PathLike, stem: str, key: dict,
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of ``folder/stem`` if they were computed for ``key`` and are intact; else ``compute()``d,
    stored and returned. Says in one line what it found when it recomputes an existing entry."""
    path = Path(folder).expanduser() / stem
    problem = check(path, key)
    if problem is None:
        with np.load(path.with_suffix(".npz")) as stored:
            return {name: stored[name] for name in stored.files}
    if problem != "missing":
        print(f"cache {path}.npz is {problem}: computing it again.", flush=True)
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npz")
    np.savez(partial, **arrays)
    meta = {"format": FORMAT, "key": key, "bytes": partial.stat().st_size, "sha256": _sha256(partial),
            "arrays": {name: [list(a.shape), str(a.dtype)] for name, a in arrays.items()}}
    path.with_suffix(".json").unlink(missing_ok=True)  # no description while the data changes
    partial.replace(path.with_suffix(".npz"))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"cached {path}.npz: {meta['bytes'] / 2**30:.2f} GiB", flush=True)
    return arrays
