# Two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
# The CPU build of torch lies on local disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH   ?= torch==2.13.0

.PHONY: setup demo test lint bench bench-editing bench-serve bench-unet bench-composable \
	bench-latency clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m atelier.demo

# The web page's end-to-end test drives Debian's Chromium (never a downloaded browser).
browser:
	@command -v chromium > /dev/null || { command -v apt-get > /dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	   chromium chromium-driver > /dev/null) ; } || \
	  echo "warning: Debian chromium not installed; the browser test will be skipped"

test: $(STAMP) browser
	$(VENV)/bin/ruff check atelier tests bench
	# One thread per process: the tests use small tensors, where a second OpenMP thread only adds
	# contention (and stalls badly when anything else holds a core).
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/samplers.py

bench-editing: $(STAMP)
	$(PY) bench/editing.py

bench-unet: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) bench/unet_cost.py --steps 10

bench-composable: $(STAMP)
	$(PY) bench/composable.py --guidance 3,2,1.5

bench-serve: $(STAMP)
	$(PY) bench/serve_load.py

# Cold CLI, --help, warm Python API and warm server for the default; --models adds others.
bench-latency: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) bench/latency.py

lint: $(STAMP)
	$(VENV)/bin/ruff check atelier tests bench

clean:
	rm -rf $(VENV) out
