"""Where the data files live, and how missing ones are downloaded.

The data directory is, in order of precedence: the `data_dir` argument, the
environment variable RESKERNEL_DATA, then a per-user cache folder
(``pooch.os_cache("reskernel")``, e.g. ~/.cache/reskernel on Linux). Inside it:

    mnist/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
          t10k-images-idx3-ubyte.gz,  t10k-labels-idx1-ubyte.gz
    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch
    cifar-10-python.tar.gz            (only if downloaded, or given instead of the batches)

A file already present is checked against its MD5 the first time it is used
(reskernel.data._verify): the official one, or the one listed for it in
<data directory>/MD5SUMS, so a folder of partial files with rewritten headers
declares its own; a corrupt file is an error naming it, never silently loaded.
A missing file is downloaded with pooch, which verifies the official MD5 before
moving the file into place. The readers then check the structure (headers, sizes).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Tuple, Union

import pooch

__all__ = ["ENV_VAR", "Remote", "MNIST_REMOTES", "CIFAR10_REMOTE", "resolve_data_dir", "locate", "fetch"]

ENV_VAR = "RESKERNEL_DATA"
PathLike = Union[str, "os.PathLike[str]"]

# yann.lecun.com, the original home of MNIST, often refuses or rate-limits
# downloads, so it is tried last; the ossci S3 bucket (used by torchvision) and
# the cvdf Google Cloud bucket (used by TensorFlow) serve the same files.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclasses.dataclass(frozen=True)
class Remote:
    """An official file: its distributed name, MD5, and the URLs that serve it, in order."""

    fname: str
    md5: str
    urls: Tuple[str, ...]


def _mnist(fname: str, md5: str) -> Remote:
    return Remote(fname, md5, tuple(base + fname for base in MNIST_MIRRORS))


MNIST_REMOTES = {
    r.fname: r
    for r in (
        _mnist("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        _mnist("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        _mnist("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    )
}
CIFAR10_REMOTE = Remote(
    "cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
)

# A pooch downloader, or None for pooch's HTTP downloader with a progress bar.
# Tests install a local one here so that no test touches the network.
_DOWNLOADER = None


def locate(data_dir: Optional[PathLike] = None) -> Tuple[Path, str]:
    """(data directory, a phrase saying where that choice came from)."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a path (str or os.PathLike) or None, got {type(data_dir).__name__}")
        return Path(data_dir).expanduser(), "the data_dir argument"
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser(), f"the {ENV_VAR} environment variable"
    return Path(pooch.os_cache("reskernel")), f"the default cache ({ENV_VAR} is not set)"


def resolve_data_dir(data_dir: Optional[PathLike] = None) -> Path:
    """The data directory: `data_dir` if given, else $RESKERNEL_DATA, else pooch.os_cache("reskernel")."""
    return locate(data_dir)[0]


def _how_to(remote: Remote) -> str:
    return (f"Download {remote.urls[0]} (md5 {remote.md5}) yourself, or point the {ENV_VAR} environment "
            "variable (or the data_dir argument) at a folder laid out as mnist/<official .gz files> and "
            "cifar-10-batches-py/<official batches>.")


def missing_message(what: str, where: Path, source: str, remote: Remote, failures=()) -> str:
    tried = ("; download failed: " + "; ".join(failures)) if failures else "; downloading was not allowed (download=False)"
    return (f"{what} is missing: looked in {where} (data directory from {source}){tried}. " + _how_to(remote))


def fetch(remote: Remote, folder: Path, *, what: str, where: Path, source: str, download: bool) -> Path:
    """folder/remote.fname (inside the data directory `where`), MD5-verified; downloaded first if absent.

    Raises FileNotFoundError (naming `what`, `where` and how to set RESKERNEL_DATA)
    when the file is absent and cannot be downloaded, and ValueError when a present
    file fails its checksum (see _verify.check) or every download came back with a
    checksum other than the official one (nothing is cached then).
    """
    from . import _verify  # here, not at the top: _verify reads the hashes defined in this module

    path = folder / remote.fname
    if path.is_file():
        return _verify.check(path, where)
    if not download:
        raise FileNotFoundError(missing_message(what, where, source, remote))
    failures, mismatches = [], []
    for url in remote.urls:
        try:
            out = Path(pooch.retrieve(url, known_hash="md5:" + remote.md5, fname=remote.fname, path=folder,
                                      downloader=_DOWNLOADER, progressbar=_DOWNLOADER is None))
            _verify.remember(out, remote.md5)  # pooch has just hashed it
            return out
        except ValueError as e:  # pooch: hash of the downloaded file does not match
            (mismatches if "hash" in str(e).lower() else failures).append(f"{url}: {e}")
        except Exception as e:  # network, HTTP status, permissions: try the next mirror
            failures.append(f"{url}: {type(e).__name__}: {e}")
    if mismatches:
        raise ValueError(f"checksum mismatch for {remote.fname}: the downloaded file does not have the official "
                         f"md5 {remote.md5}, so it was discarded and nothing was cached in {folder}. "
                         + " | ".join(mismatches + failures))
    raise FileNotFoundError(missing_message(what, where, source, remote, failures))
