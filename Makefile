# Two commands on a fresh machine (see README):  make demo   and   make test
PYTHON ?= python3
VENV := .venv
NT_VENV := .venv-nt
UV := $(VENV)/bin/uv
# The pinned reference environment: the last neural-tangents release and what it imports with.
NT_PINS := "jax==0.5.3" "jaxlib==0.5.3" "neural-tangents==0.6.5" "tf2jax==0.3.7" "tensorflow>=2.15"
# --dist loadfile: each test file on one worker, so its module fixtures and compilations run once.
PYTEST_ARGS ?= -n 2 --dist loadfile
# Executed copies of the notebooks: the tests save them, `make docs` renders them as HTML.
EXECUTED_NOTEBOOKS := build/notebooks

# The tests and notebooks read the real MNIST/CIFAR-10 files from RESKERNEL_DATA; as CI does
# (.ci/run), default to ../shared/data beside the checkout when that folder exists.
ifeq ($(strip $(RESKERNEL_DATA)),)
ifneq ($(wildcard ../shared/data),)
export RESKERNEL_DATA := $(abspath ../shared/data)
endif
endif

.PHONY: env nt-env demo test test-compat docs clean

# --compile-bytecode: where Python writes no bytecode (PYTHONDONTWRITEBYTECODE, as on this project's
# machines) every process (pytest workers, subprocess tests, notebook kernels) would compile jax
# from source: import reskernel 7.8 s -> 2.3 s, with neural-tangents 18.6 s -> 7.9 s (load ~4).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip uv
	$(UV) pip install -q --compile-bytecode --python $(VENV)/bin/python -e ".[test]"
	touch $@

$(NT_VENV)/.installed: pyproject.toml $(VENV)/.installed
	$(UV) venv -q --python $(PYTHON) $(NT_VENV)
	$(UV) pip install -q --compile-bytecode --python $(NT_VENV)/bin/python $(NT_PINS) -e ".[test]"
	$(NT_VENV)/bin/python -c "import jax, neural_tangents; assert jax.__version__ == '0.5.3', jax.__version__"
	touch $@

env: $(VENV)/.installed
nt-env: $(NT_VENV)/.installed

demo: env
	$(VENV)/bin/reskernel demo --out results/demo

# The whole test suite on current JAX, then the core tests again on jax 0.5.3 in the
# pinned environment (reskernel must work on both), then the docs build (API and notebooks).
test: env nt-env
	RESKERNEL_EXECUTED_NOTEBOOKS=$(EXECUTED_NOTEBOOKS) $(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	$(MAKE) test-compat
	$(MAKE) docs

test-compat: nt-env
	$(NT_VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) -m "not slow and not reference" \
		tests/test_arccos.py tests/test_analytic.py tests/test_errors.py tests/test_networks.py tests/test_empirical.py \
		tests/test_fast_arccos.py tests/test_blocked.py tests/test_tabulated.py tests/test_precise.py \
		tests/test_conv_arch.py tests/test_conv_kernel.py tests/test_conv_nets.py tests/test_draws.py

# API reference (pdoc) into site/, then every notebook as HTML with its figures and numbers
# into site/notebooks/ (run in small mode unless the tests left a fresh executed copy; a
# failing notebook fails the build).
docs: env
	$(VENV)/bin/python -m pdoc reskernel -o site --docformat google 2>&1 | tee site.log; \
		! grep -qi "warn\|error" site.log; rc=$$?; rm -f site.log; exit $$rc
	$(VENV)/bin/python notebooks/_render.py --executed $(EXECUTED_NOTEBOOKS) --out site/notebooks

clean:
	rm -rf $(VENV) $(NT_VENV) site results $(EXECUTED_NOTEBOOKS)
