"""Data layer: loaders on the shared real files, two-class subsets, file
validation, and the download path (served locally: no test touches the network)."""
from __future__ import annotations

import gzip
import os
import hashlib
import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from reskernel import data
from reskernel.data import _fetch
from reskernel.data._mnist import MNIST_FILES

# The real files: RESKERNEL_DATA when set (as .ci/run does), else ../shared/data beside the checkout.
SHARED = Path(os.environ.get("RESKERNEL_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
MNIST_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def user_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("user-cache")


@pytest.fixture(autouse=True)
def shared_data(monkeypatch, user_cache):
    """RESKERNEL_DATA -> ../shared/data, a user cache of this module's own (for the record of
    verified files), and any download attempt fails loudly and is recorded."""
    assert (SHARED / "mnist" / MNIST_TEST_IMAGES).is_file(), f"shared data not found at {SHARED}"
    monkeypatch.setenv("RESKERNEL_DATA", str(SHARED))
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_cache))
    calls = []

    def offline(url, output_file, pooch):
        calls.append(url)
        raise ConnectionError(f"network disabled in tests ({url})")

    monkeypatch.setattr(_fetch, "_DOWNLOADER", offline)
    return calls


@pytest.fixture(scope="module")
def mnist_test():
    return data.load_mnist("test", SHARED, download=False)


def _serve(files, calls=None):
    """A pooch downloader that copies files[basename of url] to the output path."""
    def downloader(url, output_file, pooch):
        if calls is not None:
            calls.append(url)
        shutil.copyfile(files[url.rsplit("/", 1)[-1]], output_file)
    return downloader


# ---- loaders on the shared files: counts from the shared README, values decoded independently

def test_counts_match_shared_readme(shared_data, mnist_test):
    assert mnist_test[0].shape == (10_000, 28, 28) and mnist_test[0].dtype == np.uint8
    assert mnist_test[1].shape == (10_000,) and mnist_test[1].dtype == np.int64
    xtr, ytr = data.load_mnist("train")
    assert xtr.shape == (3_678, 28, 28) and ytr.shape == (3_678,)
    ctr, ltr = data.load_cifar10("train")
    cte, lte = data.load_cifar10("test")
    assert ctr.shape == (5_085, 32, 32, 3) and ltr.shape == (5_085,) and ctr.dtype == np.uint8
    assert cte.shape == (1_017, 32, 32, 3) and lte.shape == (1_017,)
    assert shared_data == []  # everything was found locally


def test_shared_test_images_are_the_official_file():
    md5 = hashlib.md5((SHARED / "mnist" / MNIST_TEST_IMAGES).read_bytes()).hexdigest()
    assert md5 == "9fb629c4189551a2d022fa330f9573f3" == _fetch.MNIST_REMOTES[MNIST_TEST_IMAGES].md5


def test_mnist_matches_manual_idx_decode(mnist_test):
    raw = gzip.decompress((SHARED / "mnist" / MNIST_TEST_IMAGES).read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x03"
    first = np.frombuffer(raw[16:16 + 784], np.uint8).reshape(28, 28)
    last = np.frombuffer(raw[-784:], np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(mnist_test[0][0], first)
    np.testing.assert_array_equal(mnist_test[0][-1], last)
    labels = gzip.decompress((SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert mnist_test[1][123] == labels[8 + 123]
    # The published first labels of the official sets.
    assert mnist_test[1][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert data.load_mnist("train")[1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_cifar_matches_manual_decode():
    with open(SHARED / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images, labels = data.load_cifar10("train")
    n1 = 1_017  # each shared batch holds its first 1,017 images
    i, r, c = 5, 7, 30
    for ch in range(3):  # channel-major rows: value (ch, r, c) at ch * 1024 + r * 32 + c
        assert images[n1 + i, r, c, ch] == batch[b"data"][i, ch * 1024 + r * 32 + c]
    assert labels[n1 + i] == batch[b"labels"][i]
    assert labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.load_cifar10("test")[1][:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert data.CIFAR10_CLASSES[:2] == ("airplane", "automobile")


# ---- data directory resolution

def test_data_dir_precedence(monkeypatch, tmp_path):
    assert data.resolve_data_dir() == SHARED
    assert data.resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.delenv("RESKERNEL_DATA")
    monkeypatch.setattr(_fetch.pooch, "os_cache", lambda name: tmp_path / "cache" / name)
    assert data.resolve_data_dir() == tmp_path / "cache" / "reskernel"
    with pytest.raises(TypeError, match="data_dir"):
        data.resolve_data_dir(3)


# ---- two-class subsets

def test_two_class_counts_match_shared_readme():
    m = data.two_class("mnist2", (0, 1))
    assert (m.n_train, m.n_test, m.dim) == (761, 2_115, 784)
    c = data.two_class("cifar2")
    assert c.classes == (0, 1) and c.class_names == ("airplane", "automobile")
    assert (c.n_train, c.n_test, c.dim) == (1_041, 198, 3_072)
    assert data.two_class("mnist2").classes == data.DEFAULT_CLASSES["mnist2"] == (4, 9)


def test_two_class_preprocessing_and_labels(mnist_test):
    d = data.two_class("mnist2", (3, 8), n_test=300, seed=1, data_dir=SHARED)
    images, labels = mnist_test
    np.testing.assert_array_equal(d.y_test, np.where(labels[d.idx_test] == 3, 1.0, -1.0))
    assert set(np.unique(labels[d.idx_test])) == {3, 8} and set(np.unique(d.y_train)) == {-1.0, 1.0}
    np.testing.assert_allclose(np.linalg.norm(d.x_test, axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(d.x_test.mean(axis=1), 0.0, atol=1e-15)
    # Independent reference for one row: pixels / 255, minus mean, over norm.
    v = images[d.idx_test[7]].reshape(-1) / 255.0
    v = v - v.sum() / 784
    np.testing.assert_allclose(d.x_test[7], v / np.sqrt(v @ v), rtol=0, atol=1e-14)
    raw = data.two_class("mnist2", (3, 8), n_test=300, seed=1, center=False, sphere=False, dtype=np.float32)
    assert raw.x_test.dtype == raw.y_test.dtype == np.float32
    np.testing.assert_array_equal(raw.x_test, images[d.idx_test].reshape(300, -1).astype(np.float32) / 255)
    assert raw.x_test.min() == 0.0 and raw.x_test.max() == 1.0
    centered = data.two_class("cifar2", n_train=50, n_test=20, sphere=False)
    np.testing.assert_allclose(centered.x_train.mean(axis=1), 0.0, atol=1e-14)
    assert not np.allclose(np.linalg.norm(centered.x_train, axis=1), 1.0)
    with pytest.raises(ValueError, match="read-only"):
        d.x_train[0, 0] = 1.0


def test_two_class_seed_determinism_and_balance():
    a = data.two_class("cifar2", n_train=200, n_test=60, seed=3)
    b = data.two_class("cifar2", n_train=200, n_test=60, seed=3)
    c = data.two_class("cifar2", n_train=200, n_test=60, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.idx_test, b.idx_test)
    assert not np.array_equal(a.idx_train, c.idx_train)
    assert np.all(np.diff(a.idx_train) > 0) and a.n_train == 200 and a.n_test == 60
    # The test draw does not depend on the training size.
    np.testing.assert_array_equal(data.two_class("cifar2", n_train=100, n_test=60, seed=3).idx_test, a.idx_test)
    bal = data.two_class("cifar2", n_train=200, n_test=60, balanced=True, seed=3)
    assert np.sum(bal.y_train == 1) == np.sum(bal.y_train == -1) == 100
    assert np.sum(bal.y_test == 1) == 30
    full = data.two_class("cifar2", balanced=True)  # shared test split: 105 airplanes, 93 automobiles
    assert full.n_test == 2 * 93 and np.sum(full.y_test == 1) == 93
    assert a.metadata["n_train"] == 200 and a.metadata["classes"] == [0, 1] and a.metadata["seed"] == 3


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dataset="mnist"), ValueError, "mnist2.*cifar2"),
    (dict(dataset="cifar2", classes=(0, 10)), ValueError, "allowed"),
    (dict(dataset="cifar2", classes=("airplane", "whale")), ValueError, "allowed"),
    (dict(dataset="mnist2", classes=(7, 7)), ValueError, "different"),
    (dict(dataset="mnist2", classes=(1,)), ValueError, "pair"),
    (dict(dataset="mnist2", classes=(0, 1), n_train=800), ValueError, "761 in all"),
    (dict(dataset="cifar2", n_test=199), ValueError, "198 in all"),
    (dict(dataset="cifar2", n_test=190, balanced=True), ValueError, "at most 186"),
    (dict(dataset="cifar2", n_train=101, balanced=True), ValueError, "even"),
    (dict(dataset="mnist2", n_train=0), ValueError, "n_train must be >= 1"),
    (dict(dataset="mnist2", n_test=2.5), TypeError, "n_test"),
    (dict(dataset="mnist2", seed=-1), ValueError, "seed"),
    (dict(dataset="mnist2", dtype=np.int32), TypeError, "dtype"),
])
def test_two_class_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.two_class(**kwargs)


def test_cifar_class_names_accepted():
    d = data.two_class("cifar2", ("ship", "truck"), n_train=10, n_test=10)
    assert d.classes == (8, 9) and d.class_names == ("ship", "truck")


def test_loader_argument_errors():
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="split"):
        data.load_cifar10("val")
    with pytest.raises(ValueError, match="constant"):
        data.preprocess(np.full((2, 4, 4), 7, np.uint8))


# ---- corrupt and truncated files

def _copy_mnist(tmp_path):
    shutil.copytree(SHARED / "mnist", tmp_path / "mnist")
    return tmp_path / "mnist"


def _declare(root):
    """Write root/MD5SUMS: the shared files' checksums, then those of every file now under root.
    The files these tests damage on purpose are then declared good, so the loaders get past
    the checksum (tests/test_checksums.py) to the structural checks tested here."""
    lines = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n"
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "MD5SUMS"]
    (root / "MD5SUMS").write_text((SHARED / "MD5SUMS").read_text() + "".join(lines))


def test_truncated_mnist_file_names_the_file(tmp_path):
    folder = _copy_mnist(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    _declare(tmp_path)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: cannot decompress.*truncated or corrupt"):
        data.load_mnist("train", tmp_path)


def test_idx_payload_must_match_header(tmp_path):
    folder = _copy_mnist(tmp_path)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    # A well-formed gzip whose payload is one label short of its header count.
    path.write_bytes(gzip.compress(raw[:-1]))
    _declare(tmp_path)
    with pytest.raises(ValueError, match=r"train-labels.*\(3678,\).*3677 data bytes"):
        data.load_mnist("train", tmp_path)
    # Header rewritten to claim more images than the payload holds.
    path.write_bytes(gzip.compress(raw[:4] + (3679).to_bytes(4, "big") + raw[8:]))
    _declare(tmp_path)
    with pytest.raises(ValueError, match="train-labels.*header"):
        data.load_mnist("train", tmp_path)
    # Labels file given where images are expected: wrong magic number.
    shutil.copyfile(folder / "t10k-labels-idx1-ubyte.gz", folder / MNIST_TEST_IMAGES)
    _declare(tmp_path)
    with pytest.raises(ValueError, match="t10k-images.*magic number 0x00000801, expected 0x00000803"):
        data.load_mnist("test", tmp_path)


def test_truncated_or_foreign_cifar_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(SHARED / "cifar-10-batches-py", folder)
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) - 5000])
    _declare(tmp_path)
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR-10 batch.*truncated, corrupt"):
        data.load_cifar10("test", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((3, 3072), np.float32), b"labels": [0] * 3}))
    _declare(tmp_path)
    with pytest.raises(ValueError, match="test_batch.*uint8"):
        data.load_cifar10("test", tmp_path)

    class Payload:  # a pickle that would run code on load must be refused
        def __reduce__(self):
            return (print, ("pwned",))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    _declare(tmp_path)
    with pytest.raises(ValueError, match=r"test_batch.*print is not allowed"):
        data.load_cifar10("test", tmp_path)


# ---- missing files: offline error, local download path, checksums, tarball

def test_missing_offline_error_says_what_where_and_how(tmp_path, shared_data):
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist("test", tmp_path)
    msg = str(info.value)
    assert "mnist/t10k-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg and "RESKERNEL_DATA" in msg
    assert "data_dir argument" in msg and "network disabled" in msg
    # Every mirror was tried, the canonical S3 mirror first.
    assert shared_data[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz"
    assert len(shared_data) == len(_fetch.MNIST_MIRRORS)
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/test_batch.*download=False.*RESKERNEL_DATA"):
        data.load_cifar10("test", tmp_path, download=False)
    assert len(shared_data) == len(_fetch.MNIST_MIRRORS)  # download=False touched no downloader


def test_download_verifies_official_md5(tmp_path, monkeypatch):
    # The shared t10k files are byte-identical to the official ones, so pooch's
    # real MD5 check passes on them.
    calls = []
    files = {n: SHARED / "mnist" / n for n in MNIST_FILES["test"]}
    monkeypatch.setattr(_fetch, "_DOWNLOADER", _serve(files, calls))
    monkeypatch.setenv("RESKERNEL_DATA", str(tmp_path))
    images, labels = data.load_mnist("test")
    assert images.shape == (10_000, 28, 28) and labels[:3].tolist() == [7, 2, 1]
    assert (tmp_path / "mnist" / MNIST_TEST_IMAGES).is_file()
    assert calls[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") and len(calls) == 2
    data.load_mnist("test")
    assert len(calls) == 2  # cached: no second download


def test_download_checksum_mismatch_raises_and_caches_nothing(tmp_path, monkeypatch):
    # The shared training files are partial, so their MD5 is not the official one.
    files = {n: SHARED / "mnist" / n for n in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}
    monkeypatch.setattr(_fetch, "_DOWNLOADER", _serve(files))
    with pytest.raises(ValueError, match="checksum mismatch for train-images-idx3-ubyte.gz.*f68b3c2d"):
        data.load_mnist("train", tmp_path)
    assert not any((tmp_path / "mnist").iterdir())


def _tarball(path, names):
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for n in names:
            tar.add(SHARED / "cifar-10-batches-py" / n, arcname=f"cifar-10-batches-py/{n}")
    return path


def test_cifar_from_tarball_present_or_downloaded(tmp_path, monkeypatch):
    expected = data.load_cifar10("test")
    local = tmp_path / "given"
    local.mkdir()
    _tarball(local / "cifar-10-python.tar.gz", ["test_batch", "batches.meta"])
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz: MD5 checksum mismatch: expected c58f3010"):
        data.load_cifar10("test", local, download=False)  # present, but neither official nor declared
    _declare(local)
    got = data.load_cifar10("test", local, download=False)  # declared in local/MD5SUMS: used
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert (local / "cifar-10-batches-py" / "test_batch").is_file()
    assert not list((local / "cifar-10-batches-py").glob(".*part"))
    with pytest.raises(ValueError, match="no cifar-10-batches-py/data_batch_1"):
        data.load_cifar10("train", local, download=False)

    # Download path: a non-official tarball fails the official MD5 ...
    served = _tarball(tmp_path / "cifar-10-python.tar.gz", ["test_batch"])
    monkeypatch.setattr(_fetch, "_DOWNLOADER", _serve({served.name: served}))
    with pytest.raises(ValueError, match="checksum mismatch.*c58f30108f718f92721af3b95e74349a"):
        data.load_cifar10("test", tmp_path / "fresh")
    # ... and is accepted once its own MD5 is the expected one.
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    monkeypatch.setattr(_fetch, "CIFAR10_REMOTE", _fetch.Remote(served.name, md5, _fetch.CIFAR10_REMOTE.urls))
    (tmp_path / "fresh").mkdir(exist_ok=True)
    _declare(tmp_path / "fresh")  # the extracted batch is the shared partial one
    got = data.load_cifar10("test", tmp_path / "fresh")
    np.testing.assert_array_equal(got[0], expected[0])


def test_corrupt_tarball_names_the_file(tmp_path):
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as tar:
        tar.add(SHARED / "cifar-10-batches-py" / "test_batch", arcname="cifar-10-batches-py/test_batch")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(blob.getvalue()[:100_000])
    _declare(tmp_path)
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz: cannot read.*truncated or corrupt"):
        data.load_cifar10("test", tmp_path, download=False)


@pytest.mark.parametrize("call", [
    lambda: data.load_mnist("test", download="no"),
    lambda: data.load_cifar10("test", download=1),
    lambda: data.two_class("cifar2", n_train=10, n_test=10, balanced="no"),
    lambda: data.two_class("cifar2", n_train=10, n_test=10, sphere=None),
    lambda: data.preprocess(np.ones((2, 4, 4), np.uint8), center="False"),
])
def test_flags_must_be_booleans(call):
    # "no" and "False" are truthy: taken as given they would switch the option on.
    with pytest.raises(TypeError, match="must be True or False"):
        call()
