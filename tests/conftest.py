"""Shared fixtures: float64 switched on per test, data directory, tolerances."""
import contextlib
import os
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

if not os.environ.get("RESKERNEL_DATA") and SHARED_DATA.is_dir():
    os.environ["RESKERNEL_DATA"] = str(SHARED_DATA)

# The real MNIST/CIFAR-10 files some tests read: $RESKERNEL_DATA, as `make test` and CI set it.
DATA = Path(os.environ["RESKERNEL_DATA"]).expanduser() if os.environ.get("RESKERNEL_DATA") else None
HAS_DATA = DATA is not None and (DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
NO_DATA = (
    "this test reads the real MNIST/CIFAR-10 files, and none were found "
    + (f"in RESKERNEL_DATA={DATA}" if DATA is not None
       else f"(RESKERNEL_DATA is not set and {SHARED_DATA} does not exist)")
    + ": set RESKERNEL_DATA=/path/to/data, a folder holding mnist/<the 4 official .gz files> and "
    "cifar-10-batches-py/<the official batches> (`make test` and .ci/run use ../shared/data beside the checkout)"
)


def pytest_runtest_setup(item):
    """Without data, test_data.py's fixtures would fail without naming RESKERNEL_DATA: stop its
    tests first, before any fixture (some are module-scoped), with NO_DATA."""
    if not HAS_DATA and getattr(item.module, "__name__", "") == "test_data":
        pytest.fail(NO_DATA, pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _no_downloads():
    """Tests never download data: a loader that would is stopped with a message that says what
    to set (test_data.py installs its own local downloaders). Session-scoped, so that it is in
    place before any module-scoped fixture loads data."""
    from reskernel.data import _fetch

    def refuse(url, output_file, pooch):
        why = f"tests never download data, and {url.rsplit('/', 1)[-1]} is not in RESKERNEL_DATA={DATA}"
        pytest.fail(why if HAS_DATA else f"{NO_DATA} (a loader tried to download {url})", pytrace=False)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_fetch, "_DOWNLOADER", refuse)
        yield


@pytest.fixture
def x64():
    """Enable float64 for one test, restoring the previous setting after."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


# Per-dtype relative tolerances for "same quantity, different code path" checks.
RTOL = {np.dtype("float32"): 2e-5, np.dtype("float64"): 1e-10}


def assert_close(actual, desired, *, rtol=None, atol=0.0, err_msg=""):
    """Relative comparison with a tolerance chosen by the actual array's dtype."""
    actual = np.asarray(actual)
    rtol = RTOL[actual.dtype] if rtol is None else rtol
    np.testing.assert_allclose(actual, np.asarray(desired), rtol=rtol, atol=atol, err_msg=err_msg)


@contextlib.contextmanager
def umask(mask):
    """The process umask set to `mask` inside the block (for the file-mode tests)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
