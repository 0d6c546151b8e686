"""Study results as JSON, written atomically and read back to resume."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def jsonable(v):
    """Python scalars for JSON; non-finite floats become None."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [jsonable(u) for u in v]
    if isinstance(v, dict):
        return {k: jsonable(u) for k, u in v.items()}
    return v


def write_json(path, obj) -> None:
    """Write obj to path through a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(jsonable(obj), f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_records(path, study: str, config: dict, overwrite: bool = False) -> list:
    """Records of an earlier run of the same study and config at `path`, else [].

    A file from another study or config raises ValueError unless overwrite is True.
    """
    if path is None or overwrite or not Path(path).exists():
        return []
    with open(path) as f:
        old = json.load(f)
    if old.get("study") != study or old.get("config") != jsonable(config):
        raise ValueError(f"{path} holds results of another study or configuration "
                         f"({old.get('study')}, {old.get('config')}); choose another output "
                         "path or pass overwrite=True")
    return list(old.get("records", []))
