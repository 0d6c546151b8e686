"""Ten-class MNIST / CIFAR-10 subsets (issue 15): balance, the file-order rule recomputed
from the raw labels, seeded draws, validation disjoint from training, preprocessing,
targets, metadata and errors, on the real files in RESKERNEL_DATA."""
import hashlib
import json

import numpy as np
import pytest

from conftest import DATA, HAS_DATA, NO_DATA
from reskernel import data


@pytest.fixture(autouse=True)
def real_data(monkeypatch, tmp_path_factory):
    """The real files, and a user cache of this module's own (the record of verified files)."""
    if not HAS_DATA:
        pytest.fail(NO_DATA, pytrace=False)
    monkeypatch.setenv("RESKERNEL_DATA", str(DATA))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "ten-class-cache"))


@pytest.fixture(scope="module")
def mnist_raw():
    return data.load_mnist("train", DATA), data.load_mnist("test", DATA)


@pytest.fixture(scope="module")
def cifar_raw():
    return data.load_cifar10("train", DATA), data.load_cifar10("test", DATA)


def first_per_class(labels, start, stop):
    """Rows start..stop-1 of each class in file order, by a plain scan of the labels."""
    seen, rows = [0] * 10, []
    for i, c in enumerate(labels.tolist()):
        if start <= seen[c] < stop:
            rows.append(i)
        seen[c] += 1
    return np.array(rows, dtype=np.int64)


# ---- selection

def test_first_in_file_order_mnist(mnist_raw):
    (images, labels), (images_te, labels_te) = mnist_raw
    d = data.ten_class("mnist", 200, n_val=100)
    rows_train, rows_val = first_per_class(labels, 0, 20), first_per_class(labels, 20, 30)
    assert d.meta["splits"]["train"]["indices"] == rows_train.tolist()
    assert d.meta["splits"]["val"]["indices"] == rows_val.tolist()
    np.testing.assert_array_equal(d.labels_train, labels[rows_train])
    np.testing.assert_array_equal(d.labels_val, labels[rows_val])
    assert np.bincount(d.labels_train).tolist() == [20] * 10 and np.bincount(d.labels_val).tolist() == [10] * 10
    assert (d.n_train, d.n_val, d.dim) == (200, 100, 784)
    # The default test set is every test image, in file order: all 10,000 of MNIST.
    assert d.n_test == 10_000 and d.meta["splits"]["test"]["n"] == 10_000
    np.testing.assert_array_equal(d.labels_test, labels_te)
    # Rows are the images at those indices (standardization recomputed independently).
    v = images[rows_train[37]].astype(np.float64).ravel()
    np.testing.assert_allclose(d.x_train[37], (v - v.mean()) / v.std(), rtol=0, atol=1e-12)
    v = images_te[9_999].astype(np.float64).ravel()
    np.testing.assert_allclose(d.x_test[-1], (v - v.mean()) / v.std(), rtol=0, atol=1e-12)


def test_first_in_file_order_cifar_balanced_test(cifar_raw):
    (_, labels), (_, labels_te) = cifar_raw
    d = data.ten_class("cifar10", 100, n_val=50, n_test=80, preprocess="raw")
    assert d.meta["splits"]["train"]["indices"] == first_per_class(labels, 0, 10).tolist()
    assert d.meta["splits"]["val"]["indices"] == first_per_class(labels, 10, 15).tolist()
    assert d.meta["splits"]["test"]["indices"] == first_per_class(labels_te, 0, 8).tolist()
    assert np.bincount(d.labels_test).tolist() == [8] * 10 and d.dim == 3072
    e = data.ten_class("cifar10", 10)
    assert e.n_test == len(labels_te) == 1_017  # every test image of the shared files
    assert e.x_val.shape == (0, 3072) and e.y_val.shape == (0, 10) and e.labels_val.shape == (0,)  # n_val=0


def test_largest_balanced_training_set(mnist_raw):
    (_, labels), _ = mnist_raw
    rarest = np.bincount(labels).min()  # 327 fives in the shared 3,678 training images
    d = data.ten_class("mnist", None, n_val=70, n_test=10)
    assert d.n_train == 10 * (rarest - 7) and np.bincount(d.labels_train).tolist() == [rarest - 7] * 10
    assert not set(d.meta["splits"]["train"]["indices"]) & set(d.meta["splits"]["val"]["indices"])


def test_seeded_draws(cifar_raw):
    (_, labels), (_, labels_te) = cifar_raw
    a = data.ten_class("cifar10", 200, n_val=100, n_test=50, seed=5)
    b = data.ten_class("cifar10", 200, n_val=100, n_test=50, seed=5)
    c = data.ten_class("cifar10", 200, n_val=100, n_test=50, seed=6)
    for split in ("train", "val", "test"):
        ia, ib, ic = (np.array(x.meta["splits"][split]["indices"]) for x in (a, b, c))
        np.testing.assert_array_equal(ia, ib)
        assert not np.array_equal(ia, ic)
        assert np.all(np.diff(ia) > 0)  # kept in file order
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert np.bincount(a.labels_train).tolist() == [20] * 10 and np.bincount(a.labels_val).tolist() == [10] * 10
    assert np.bincount(a.labels_test).tolist() == [5] * 10
    train, val = set(a.meta["splits"]["train"]["indices"]), set(a.meta["splits"]["val"]["indices"])
    assert not train & val
    # A draw, not the file-order rule; a larger n_train with the same seed only adds rows.
    assert sorted(train) != first_per_class(labels, 0, 20).tolist()
    assert set(data.ten_class("cifar10", 100, seed=5).meta["splits"]["train"]["indices"]) < train
    # The test draw does not depend on the training sizes.
    other = data.ten_class("cifar10", 10, n_test=50, seed=5)
    np.testing.assert_array_equal(other.labels_test, a.labels_test)
    assert other.meta["splits"]["test"]["indices"] == a.meta["splits"]["test"]["indices"]
    np.testing.assert_array_equal(a.labels_test, labels_te[a.meta["splits"]["test"]["indices"]])
    assert a.meta["seed"] == 5 and a.meta["selection"] == "seeded"


# ---- preprocessing and targets

def test_standardize_sphere_raw(mnist_raw):
    (images, _), _ = mnist_raw
    st = data.ten_class("mnist", 100, n_val=20, n_test=30)
    for x in (st.x_train, st.x_val, st.x_test):
        np.testing.assert_allclose(x.mean(axis=1), 0.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(x.var(axis=1), 1.0, rtol=0, atol=1e-12)
    sp = data.ten_class("mnist", 100, n_val=20, n_test=30, preprocess="sphere")
    for x in (sp.x_train, sp.x_val, sp.x_test):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(x.mean(axis=1), 0.0, rtol=0, atol=1e-15)
    # The sphere option is two_class's preprocessing, row for row.
    rows = sp.meta["splits"]["train"]["indices"]
    np.testing.assert_array_equal(sp.x_train, data.preprocess(images[rows]))
    raw = data.ten_class("mnist", 100, preprocess="raw", dtype=np.float32)
    assert raw.x_train.dtype == raw.y_train.dtype == np.float32 and raw.labels_train.dtype == np.int64
    np.testing.assert_array_equal(raw.x_train, images[rows].reshape(100, -1).astype(np.float32) / 255)
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 1.0
    f32 = data.ten_class("mnist", 100, dtype=np.float32)
    assert f32.x_train.dtype == np.float32 and f32.meta["dtype"] == "float32"
    np.testing.assert_allclose(f32.x_train, st.x_train, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="read-only"):
        st.x_train[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        st.y_test[0, 0] = 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_targets_exact(dtype):
    d = data.ten_class("cifar10", 50, n_val=20, n_test=30, dtype=dtype)
    for y, labels in ((d.y_train, d.labels_train), (d.y_val, d.labels_val), (d.y_test, d.labels_test)):
        assert y.dtype == dtype and y.shape == (len(labels), 10)
        hot = labels[:, None] == np.arange(10)
        assert np.all(y[hot] == dtype(0.9)) and np.all(y[~hot] == dtype(-0.1))
    plain = data.ten_class("cifar10", 50, targets="one_hot", dtype=dtype)
    np.testing.assert_array_equal(plain.y_train, np.eye(10, dtype=dtype)[plain.labels_train])
    assert plain.meta["target_values"] == {"off": 0.0, "on": 1.0}
    assert d.meta["target_values"] == {"off": -0.1, "on": 0.9}


def test_one_hot_helper():
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), targets="one_hot"), np.eye(10)[[2, 0]])
    y = data.one_hot(np.array([9]))
    assert y[0, 9] == 0.9 and np.all(y[0, :9] == -0.1) and abs(y.sum() - 0.0) < 1e-15
    with pytest.raises(ValueError, match="0..9"):
        data.one_hot(np.array([10]))


# ---- metadata

def test_meta_round_trips_and_names_files(mnist_raw):
    d = data.ten_class("mnist", 50, n_val=30, n_test=20, seed=2)
    meta = json.loads(json.dumps(d.meta))
    assert meta == d.meta
    # Every file read, with its MD5 computed here from the bytes on disk.
    expected = {f"mnist/{n}" for n in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    assert set(meta["files"]) == expected and meta["data_dir"] == str(DATA)
    for rel, md5 in meta["files"].items():
        assert md5 == hashlib.md5((DATA / rel).read_bytes()).hexdigest()
    assert meta["files"]["mnist/t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"  # the official file
    (images, labels), (_, labels_te) = mnist_raw
    assert meta["available"] == {"train": np.bincount(labels).tolist(), "test": np.bincount(labels_te).tolist()}
    for split, n, lab in (("train", 50, d.labels_train), ("val", 30, d.labels_val), ("test", 20, d.labels_test)):
        s = meta["splits"][split]
        assert s["n"] == n and s["per_class"] == [n // 10] * 10 and "seed 2" in s["rule"]
        assert s["indices_sha256"] == hashlib.sha256(np.array(s["indices"], "<i8").tobytes()).hexdigest()
        source = labels_te if split == "test" else labels
        np.testing.assert_array_equal(source[s["indices"]], lab)
    assert (meta["dataset"], meta["preprocess"], meta["targets"], meta["dtype"]) == ("mnist", "standardize",
                                                                                      "zero_mean", "float64")
    assert meta["seed"] == 2 and meta["class_names"][3] == "3" and "variance" in meta["preprocess_rule"]
    full = data.ten_class("mnist", 10).meta["splits"]["test"]  # every test image: no index list, its hash
    assert "indices" not in full and full["n"] == 10_000
    assert full["indices_sha256"] == hashlib.sha256(np.arange(10_000, dtype="<i8").tobytes()).hexdigest()


def test_meta_md5_without_a_writable_cache(monkeypatch, tmp_path):
    # No record of verified files can be written: the MD5s are computed from the files.
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    meta = data.ten_class("cifar10", 10, n_test=10).meta
    assert len(meta["files"]) == 6 and meta["class_names"][0] == "airplane"
    for rel, md5 in meta["files"].items():
        assert rel.startswith("cifar-10-batches-py/") and md5 == hashlib.md5((DATA / rel).read_bytes()).hexdigest()


# ---- errors

def test_too_large_names_class_count_and_folder(mnist_raw):
    (_, labels), _ = mnist_raw
    counts = np.bincount(labels)
    rare = int(np.argmin(counts))
    with pytest.raises(ValueError) as info:
        data.ten_class("mnist", 10 * (counts.min() + 1))
    msg = str(info.value)
    assert f"class {rare} has only {counts.min()}" in msg and str(DATA) in msg and "partial" in msg
    assert f"at most n_train={10 * counts.min()}" in msg and "3,678 of the official 60,000" in msg
    with pytest.raises(ValueError, match=r"n_val=200 .*at most n_train=3070 with n_val=200"):
        data.ten_class("mnist", 3080, n_val=200)
    with pytest.raises(ValueError, match=r"class 5 \(dog\) has only 87 .*at most n_test=870.*partial"):
        data.ten_class("cifar10", 10, n_test=880)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dataset="mnist2", n_train=10), ValueError, "one of.*'mnist', 'cifar10'.*two_class"),
    (dict(dataset="cifar", n_train=10), ValueError, "dataset must be one of"),
    (dict(dataset="mnist", n_train=15), ValueError, "multiple of 10.*got 15; use 10 or 20"),
    (dict(dataset="mnist", n_train=10, n_val=5), ValueError, "n_val must be a multiple of 10"),
    (dict(dataset="mnist", n_train=10, n_test=1001), ValueError, "n_test must be a multiple of 10"),
    (dict(dataset="mnist", n_train=0), ValueError, "n_train must be >= 10"),
    (dict(dataset="mnist", n_train=10, n_val=-10), ValueError, "n_val must be >= 0"),
    (dict(dataset="mnist", n_train=10.0), TypeError, "n_train must be an int"),
    (dict(dataset="mnist", n_train=10, preprocess="center"), ValueError, "preprocess must be one of"),
    (dict(dataset="mnist", n_train=10, targets="lee"), ValueError, "targets must be one of"),
    (dict(dataset="mnist", n_train=10, seed=-1), ValueError, "seed must be None"),
    (dict(dataset="mnist", n_train=10, seed=True), TypeError, "seed must be None"),
    (dict(dataset="mnist", n_train=10, seed=1.5), TypeError, "seed must be None"),
    (dict(dataset="mnist", n_train=10, dtype=np.float16), TypeError, "dtype must be float32 or float64"),
    (dict(dataset="mnist", n_train=10, download="no"), TypeError, "must be True or False"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.ten_class(**kwargs)
