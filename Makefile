# prunekit: `make demo` runs the demo comparison, `make test` runs the test suite.
# Both create .venv (and install the project with its dev extra) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: demo test test-all data venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist (no network download needed).
data:
	@if [ ! -f $(FMNIST) ] && command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist \
	    || echo "warning: could not install dataset-fashion-mnist; the demo and some tests need it"; \
	fi

demo: venv data
	$(BIN)/prunekit bench benchmarks/grids/demo.yaml --out runs/demo

test: venv data
	$(BIN)/python -m pytest -q

test-all: venv data
	$(BIN)/python -m pytest -q -m ""

clean:
	rm -rf $(VENV) runs
