# synkit: `make study` runs the default study, `make test` runs the suite.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STUDY ?= parameters/mini.yaml
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
WORDNET := /usr/share/wordnet/data.noun
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: study test install install-test system-data browser smoke lab clean-outputs gpu-check

## Debian data packages, only where apt-get exists and the files are absent.
system-data:
	@if [ -f $(FASHION) ] && [ -f $(WORDNET) ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian packages dataset-fashion-mnist and wordnet-base"; \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist wordnet-base \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist wordnet-base; }; \
	else \
	  echo "No apt-get here: set SYNKIT_FASHION_MNIST_DIR to a folder with Fashion-MNIST's four .gz files (the WordNet table ships inside synkit)."; \
	fi

## pip runs only when needed: this Python lacks synkit from this checkout, or pyproject.toml changed since
## (a stamp per Python environment), so a rerun of a finished study stays a matter of seconds.
STAMP = .installed-$(shell $(PYTHON) -c "import hashlib, sys; print(hashlib.sha1(sys.prefix.encode()).hexdigest()[:8])" 2>/dev/null)
FRESH = [ -f $(1) ] && [ $(1) -nt pyproject.toml ] && (cd / && $(PYTHON) -c "import pathlib, synkit; assert pathlib.Path(synkit.__file__).resolve().parents[1] == pathlib.Path('$(CURDIR)').resolve()") 2>/dev/null

install: system-data
	@if $(call FRESH,$(STAMP)); then exit 0; fi; 	echo "$(PIP) install -q -e ."; $(PIP) install -q -e . && touch $(STAMP)

## The browser test opens the report in Debian's headless chromium through chromedriver.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian packages chromium and chromium-driver (the report's browser test)"; \
	  $(SUDO) apt-get install -y -q chromium chromium-driver \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }; \
	else \
	  echo "No apt-get here: install chromium and chromedriver for the report's browser test."; \
	fi

install-test: system-data browser
	@if $(call FRESH,$(STAMP)-test); then exit 0; fi; 	echo "$(PIP) install -q -e '.[test]'"; $(PIP) install -q -e '.[test]' && touch $(STAMP) $(STAMP)-test

study: install
	$(PYTHON) -m synkit run $(STUDY)

smoke: install
	$(PYTHON) -m synkit run parameters/smoke.yaml

## The suite on TEST_WORKERS processes (one per core by default; pytest-xdist), each with its share of the cores'
## threads (tests/conftest.py); the tests that read the smoke study run in one process, so it runs once.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1)" 2>/dev/null || echo 1)
test: install-test
	$(PYTHON) -m ruff check synkit tests benchmarks notebooks
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadgroup

## JupyterLab on the whole project (notebooks/ open first); the notebooks find outputs/ from wherever their kernel starts.
lab: install
	$(PYTHON) -m jupyter lab --ServerApp.root_dir="$(CURDIR)" --ContentsManager.preferred_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

## The full-size paths (SD-1.5-architecture generation, ViT-B/16 training, CLIP ViT-B-16) on a GPU, random weights,
## each against a plain baseline; tiny sizes without CUDA. Results: outputs/gpu_check.json
GPU_CHECK_OUT ?= outputs/gpu_check.json
gpu-check: install
	$(PYTHON) -m synkit.study.gpu_check --out $(GPU_CHECK_OUT)

## Every study's outputs and the cached models (outputs/models): the next study starts cold.
clean-outputs:
	find outputs -mindepth 1 -maxdepth 1 ! -name .gitkeep ! -name README.md -exec rm -rf {} +
