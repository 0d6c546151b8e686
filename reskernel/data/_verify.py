"""Checksums of the data files, verified the first time each file is used.

A file is good when its MD5 is the official one (`official_md5`) or the one listed
for it in <data directory>/MD5SUMS (``md5sum`` format, paths relative to the data
directory): a folder of partial files, such as the one CI uses, declares its own.
Hashing every load would cost ~0.3 s for the CIFAR-10 tarball, so a file that
passed is remembered in a small JSON record in the user cache
($XDG_CACHE_HOME/reskernel, else pooch.os_cache("reskernel")), keyed by its
absolute path, size and mtime_ns: the data folder itself may be read-only, and any
rewrite of the file changes its mtime, so it is hashed again.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional

import pooch

from . import _fetch

__all__ = ["MANIFEST", "CIFAR10_BATCH_MD5", "official_md5", "check", "remember", "record_path"]

MANIFEST = "MD5SUMS"
RECORD = "verified-files.json"

# The batches inside the official cifar-10-python.tar.gz (the values torchvision checks too).
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


def official_md5(rel: str) -> Optional[str]:
    """The official MD5 of the file at `rel` (posix path relative to the data directory), or None."""
    folder, _, name = rel.rpartition("/")
    if folder == "mnist" and name in _fetch.MNIST_REMOTES:
        return _fetch.MNIST_REMOTES[name].md5
    if folder == "cifar-10-batches-py":
        return CIFAR10_BATCH_MD5.get(name)
    if folder == "" and name == _fetch.CIFAR10_REMOTE.fname:
        return _fetch.CIFAR10_REMOTE.md5
    return None


def _declared(where: Path) -> Dict[str, str]:
    """{relative path: md5} from where/MD5SUMS; lines that are not "<32 hex> <path>" are skipped
    (a skipped declaration can only make a file fail, never pass)."""
    try:
        text = (where / MANIFEST).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 32:
            continue
        digest, rel = parts[0].lower(), parts[1].strip()
        if any(c not in "0123456789abcdef" for c in digest):
            continue
        rel = rel.lstrip("*")  # md5sum's binary-mode marker
        while rel.startswith("./"):
            rel = rel[2:]
        out[rel] = digest
    return out


def record_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    folder = Path(base).expanduser() / "reskernel" if base else Path(pooch.os_cache("reskernel")).expanduser()
    return folder / RECORD


def _load_record() -> dict:
    try:
        with open(record_path(), encoding="utf-8") as f:
            files = json.load(f).get("files", {})
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _key(path: Path):
    path = path.resolve()
    st = path.stat()
    return str(path), {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def remember(path: Path, md5: str) -> None:
    """Record that `path`, as it is now, has MD5 `md5` (best effort: an unwritable cache only
    means the file is hashed again next time)."""
    try:
        key, stamp = _key(Path(path))
        files = _load_record()
        files[key] = {**stamp, "md5": md5}
        target = record_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{RECORD}.", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "files": files}, f, indent=0, sort_keys=True)
            os.replace(tmp, target)  # concurrent writers: the last one wins, the others rehash later
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError:
        pass


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check(path: Path, where: Path) -> Path:
    """`path` (inside the data directory `where`) after checking its MD5, once per (path, size, mtime).

    Raises ValueError naming the file, the expected and the found MD5 and what to do
    when the file is neither the official file nor the one listed in where/MD5SUMS.
    """
    path = Path(path)
    try:
        rel = path.resolve().relative_to(Path(where).resolve()).as_posix()
    except ValueError:
        rel = path.name
    official = official_md5(rel)
    listed = _declared(Path(where)).get(rel)
    accepted = {h for h in (official, listed) if h}
    key, stamp = _key(path)
    seen = _load_record().get(key)
    if isinstance(seen, dict) and seen.get("md5") in accepted and all(seen.get(k) == v for k, v in stamp.items()):
        return path
    found = _md5(path)
    if found in accepted:
        remember(path, found)
        return path
    expected = []
    if official:
        expected.append(f"{official} (the official file)")
    if listed:
        expected.append(f"{listed} (listed in {Path(where) / MANIFEST})")
    raise ValueError(
        f"{path}: MD5 checksum mismatch: expected {' or '.join(expected) or 'a known checksum'}, found {found}; "
        f"the file is truncated or corrupt, or not the expected file. Delete it so that it is downloaded "
        f"again, or point the {_fetch.ENV_VAR} environment variable (or the data_dir argument) at a folder "
        "of good files.")
