"""Data integrity: every data file is checked against its MD5 the first time it is used
(official hash, or the one listed in <data dir>/MD5SUMS), and remembered so that later
loads do not hash again. No test touches the network."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from reskernel import data
from reskernel.data import _fetch, _verify

SHARED = Path(os.environ.get("RESKERNEL_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
IMAGES = "t10k-images-idx3-ubyte.gz"
OFFICIAL_IMAGES_MD5 = "9fb629c4189551a2d022fa330f9573f3"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh user cache per test (the record of verified files lives there), and no downloads."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))

    def offline(url, output_file, pooch):
        raise ConnectionError(f"network disabled in tests ({url})")

    monkeypatch.setattr(_fetch, "_DOWNLOADER", offline)
    return folder / "reskernel"


@pytest.fixture
def hashes(monkeypatch):
    """The files hashed by reskernel, in order."""
    calls = []
    real = _verify._md5

    def counting(path):
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(_verify, "_md5", counting)
    return calls


def _md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _flip(path: Path, offset: int) -> None:
    """Flip the bits of one byte in place; the mtime is moved on explicitly, as any rewrite
    moves it (and a filesystem with coarse timestamps would not within one test)."""
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0xFF
    path.write_bytes(bytes(blob))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _mnist_copy(tmp_path) -> Path:
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for name in (IMAGES, "t10k-labels-idx1-ubyte.gz"):  # byte-identical to the official files
        shutil.copyfile(SHARED / "mnist" / name, root / "mnist" / name)
    return root


def test_flipped_byte_in_official_mnist_file_is_an_error(tmp_path):
    root = _mnist_copy(tmp_path)
    path = root / "mnist" / IMAGES
    # A byte of the gzip header's timestamp: gzip itself does not notice, the file decodes.
    _flip(path, 5)
    with pytest.raises(ValueError) as info:
        data.load_mnist("test", root, download=False)
    msg = str(info.value)
    assert str(path) in msg and "checksum mismatch" in msg
    assert f"expected {OFFICIAL_IMAGES_MD5} (the official file)" in msg and f"found {_md5(path)}" in msg
    assert "Delete it" in msg and "RESKERNEL_DATA" in msg


def test_flipped_pixel_in_declared_cifar_batch_is_an_error(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(SHARED / "cifar-10-batches-py", root / "cifar-10-batches-py")
    shutil.copyfile(SHARED / "MD5SUMS", root / "MD5SUMS")
    good = data.load_cifar10("test", root, download=False)
    path = root / "cifar-10-batches-py" / "test_batch"
    listed = _md5(path)
    _flip(path, path.stat().st_size // 2)  # one pixel of the pickled uint8 array: unpickles fine
    with pytest.raises(ValueError) as info:
        data.load_cifar10("test", root, download=False)
    msg = str(info.value)
    assert str(path) in msg and "checksum mismatch" in msg
    assert "40351d587109b95175f43aff81a1287e (the official file)" in msg
    assert f"{listed} (listed in {root / 'MD5SUMS'})" in msg and f"found {_md5(path)}" in msg
    _flip(path, path.stat().st_size // 2)  # flipped back: good again
    np.testing.assert_array_equal(data.load_cifar10("test", root, download=False)[0], good[0])


def test_partial_file_must_be_declared(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(SHARED / "cifar-10-batches-py", root / "cifar-10-batches-py")
    with pytest.raises(ValueError, match=r"test_batch: MD5 checksum mismatch: expected 40351d58\w+ \(the official"):
        data.load_cifar10("test", root, download=False)
    # md5sum's own formats: binary marker, ./ prefix, comments.
    (root / "MD5SUMS").write_text(f"# partial files\n{_md5(root / 'cifar-10-batches-py/test_batch')} "
                                  "*./cifar-10-batches-py/test_batch\n")
    assert data.load_cifar10("test", root, download=False)[0].shape == (1_017, 32, 32, 3)


def test_verified_once_then_remembered(tmp_path, cache, hashes):
    data.load_mnist("test", SHARED, download=False)  # the shared folder is read-only: the record is elsewhere
    assert hashes == [IMAGES, "t10k-labels-idx1-ubyte.gz"]
    data.load_mnist("test", SHARED, download=False)
    data.two_class("mnist2", n_train=10, n_test=10, data_dir=SHARED, download=False)
    assert hashes.count(IMAGES) == 1  # the test split was not hashed again; the train split once
    record = json.loads((cache / _verify.RECORD).read_text())["files"]
    entry = record[str((SHARED / "mnist" / IMAGES).resolve())]
    st = (SHARED / "mnist" / IMAGES).stat()
    assert entry == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": OFFICIAL_IMAGES_MD5}

    # A file changed after it was verified is hashed again, and refused.
    root = _mnist_copy(tmp_path)
    data.load_mnist("test", root, download=False)
    del hashes[:]
    _flip(root / "mnist" / IMAGES, 100)
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.load_mnist("test", root, download=False)
    assert hashes == [IMAGES]


def test_unwritable_cache_still_verifies(tmp_path, monkeypatch, hashes):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    for _ in range(2):
        assert data.load_mnist("test", SHARED, download=False)[0].shape == (10_000, 28, 28)
    assert hashes.count(IMAGES) == 2  # nothing could be remembered: hashed each time, no error


def test_downloaded_file_is_remembered(tmp_path, monkeypatch, hashes):
    def serve(url, output_file, pooch):
        shutil.copyfile(SHARED / "mnist" / url.rsplit("/", 1)[-1], output_file)

    monkeypatch.setattr(_fetch, "_DOWNLOADER", serve)
    data.load_mnist("test", tmp_path)
    data.load_mnist("test", tmp_path)
    assert hashes == []  # pooch verified the official MD5 on download; nothing hashed again


def test_official_hashes_cover_every_file():
    names = {f"mnist/{n}" for n in _fetch.MNIST_REMOTES} | {"cifar-10-python.tar.gz"}
    names |= {f"cifar-10-batches-py/{n}" for n in ("data_batch_1", "data_batch_2", "data_batch_3",
                                                   "data_batch_4", "data_batch_5", "test_batch", "batches.meta")}
    for rel in names:
        md5 = _verify.official_md5(rel)
        assert md5 is not None and len(md5) == 32 and int(md5, 16) >= 0
    assert _verify.official_md5("mnist/other.gz") is None
    # The shared copies that are byte-identical to the official files have the official hashes.
    assert _verify.official_md5(f"mnist/{IMAGES}") == _md5(SHARED / "mnist" / IMAGES)
    assert _verify.official_md5("cifar-10-batches-py/batches.meta") == _md5(SHARED / "cifar-10-batches-py/batches.meta")
