# synkit: `make study` runs the default study, `make test` runs the suite.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STUDY ?= parameters/mini.yaml
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
WORDNET := /usr/share/wordnet/data.noun
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: study test install install-test system-data smoke lab clean-outputs

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

install: system-data
	$(PIP) install -q -e .

install-test: system-data
	$(PIP) install -q -e '.[test]'

study: install
	$(PYTHON) -m synkit run $(STUDY)

smoke: install
	$(PYTHON) -m synkit run parameters/smoke.yaml

test: install-test
	$(PYTHON) -m pytest

lab: install
	$(PYTHON) -m jupyter lab notebooks/
