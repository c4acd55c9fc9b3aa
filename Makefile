# aedenoise: `make demo` (set up + train the seed model + report + a photo denoised), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
RUN ?= runs/fmnist-seed
PHOTO ?= runs/demo-photo
# Raise glibc's trim/mmap thresholds so freed tensor buffers are reused (see docs/benchmarks.md).
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824
export MALLOC_MMAP_THRESHOLD_ ?= 1073741824

.PHONY: setup data demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an open requirement can pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Fashion-MNIST where the loader finds it: the Debian package (root or password-less sudo),
# else the verified download, else a message with the commands to run.
data: setup
	@sh tools/fashion-mnist.sh $(PY)

demo: data
	$(PY) -m aedenoise train --preset fmnist-seed --out $(RUN) --resume  # reruns continue or reuse the run
	$(PY) -m aedenoise demo --out $(PHOTO)
	@echo "Reports: $(RUN)/report.md (Fashion-MNIST), $(PHOTO)/report.md (a photo)"

test: setup
	@sh tools/fashion-mnist.sh $(PY) || echo "(no Fashion-MNIST: the tests that read it are skipped)"
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/fashion_mnist.py --json runs/bench-fmnist.json

clean:
	rm -rf $(VENV) runs
