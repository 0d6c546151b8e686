"""The result store: JSON documents (and CSV views of them) in an output folder that several
runs may write at once.

Every change is a read-merge-write under an exclusive lock on the folder (fcntl.flock on
`<folder>/.reskernel.lock`, removed again by its holder): the document on disk is read, the
caller's rows merged into it, and the result written through a temporary file, fsync and
rename. Two runs writing different rows into one folder therefore both keep theirs, and a
reader never sees a half-written file. A table's CSV is regenerated from its JSON rows on
every write and on every resume, so a run killed between the two files is repaired by the
next one. Files get the permissions the user's umask allows (mkstemp alone gives 0600).
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import tempfile
from pathlib import Path

__all__ = ["LOCK_NAME", "REMEDY", "Table", "check_out_dir", "locked", "out_dir_callback", "read_document",
           "update_document", "write_json_atomic", "write_text_atomic"]

LOCK_NAME = ".reskernel.lock"
REMEDY = "move it away (or delete it) to start afresh, or choose another --out folder"


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path, obj) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


@contextlib.contextmanager
def locked(folder):
    """Hold the folder's exclusive result lock (across processes; not reentrant)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # The previous holder removes the file before releasing it: a lock taken on a
            # removed file guards nothing, so retry on the file the path names now.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def read_document(path, fields=None):
    """The JSON object stored at `path`, or None when there is no file.

    fields: {name: type or tuple of types} that the object's entries must have where present.
    A file that is not JSON (a truncated write from another tool, an edit) or holds other types
    raises ValueError naming the file and what to do.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the result file {path} ({e}); {REMEDY}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the result file {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}: "
                         f"truncated or edited?); {REMEDY}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"the result file {path} holds {_json_kind(type(doc))}, not the JSON object this command "
                         f"writes; {REMEDY}")
    for name, kind in (fields or {}).items():
        if name in doc and not isinstance(doc[name], kind):
            raise ValueError(f"the result file {path}: entry {name!r} is {_json_kind(type(doc[name]))}, not "
                             f"{_json_kind(kind)}; {REMEDY}")
    return doc


def _json_kind(kind) -> str:
    """JSON's name for the Python type(s) json.loads returns."""
    names = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
             bool: "a boolean", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def update_document(path, change, fields=None) -> dict:
    """Under the folder's lock: read the document at `path` (None when absent), write
    `change(document)` and return it."""
    path = Path(path)
    with locked(path.parent):
        doc = change(read_document(path, fields))
        write_json_atomic(path, doc)
    return doc


class Table:
    """Rows identified by `key_fields`, stored as <folder>/<stem>.json ({"meta", "rows"}) and the
    CSV view <folder>/<stem>.csv (list values joined by spaces)."""

    def __init__(self, folder, stem: str, key_fields):
        self.folder, self.stem, self.key_fields = Path(folder), stem, tuple(key_fields)
        self.json, self.csv = self.folder / f"{stem}.json", self.folder / f"{stem}.csv"

    def key(self, row) -> tuple:
        return tuple(tuple(row[k]) if isinstance(row[k], list) else row[k] for k in self.key_fields)

    def read(self) -> list:
        """The stored rows ([] when there is no file), checked."""
        doc = read_document(self.json, {"rows": list, "meta": dict})
        return [] if doc is None else self._rows(doc)

    def _rows(self, doc) -> list:
        rows = doc.get("rows", [])
        for i, row in enumerate(rows):
            missing = [k for k in self.key_fields if not isinstance(row, dict) or k not in row]
            if missing:
                raise ValueError(f"the result file {self.json}: row {i} lacks {', '.join(missing)}; {REMEDY}")
        return rows

    def merge(self, rows=(), meta=None) -> list:
        """Store `rows` (replacing stored rows with the same key) beside every other stored row,
        rewrite the JSON and the CSV from it; returns all rows. Without rows, this repairs a CSV
        that a killed run left behind the JSON."""
        if not rows and not self.json.exists():
            return []
        with locked(self.folder):
            doc = read_document(self.json, {"rows": list, "meta": dict})
            if doc is None and not rows:
                return []
            old = [] if doc is None else self._rows(doc)
            new = {self.key(r): r for r in rows}
            merged = [r for r in old if self.key(r) not in new] + list(new.values())
            merged.sort(key=lambda r: tuple(f"{v:020.6f}" if isinstance(v, (int, float)) else str(v)
                                            for v in self.key(r)))
            meta = meta if meta is not None else ({} if doc is None else doc.get("meta", {}))
            write_json_atomic(self.json, {"meta": meta, "rows": merged})
            write_text_atomic(self.csv, _csv(merged, self.key_fields))
        return merged


def _csv(rows, key_fields) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r)) if rows else list(key_fields)
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()


def check_out_dir(path) -> Path:
    """Raise ValueError unless `path` is a folder results can be written to, or can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder; give a folder for the results")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot create the folder {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        if parent == path:
            raise ValueError(f"cannot write to the folder {path}: permission denied")
        raise ValueError(f"cannot create the folder {path}: {parent} is not writable (permission denied)")
    return path


def out_dir_callback(ctx, param, value):
    """click callback for --out options: check_out_dir before any computing, as a usage error."""
    import click

    if value is None or ctx.resilient_parsing:
        return value
    try:
        check_out_dir(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    return value
