PYTHON ?= python

.PHONY: test system install demo

# Debian packages the integration tests need (docker-registry, skopeo, umoci, ...).
system:
	bash tests/support/system.sh

install: system
	$(PYTHON) -m pip install -q -e '.[test]'

test: install
	$(PYTHON) -m pytest -q --timeout=900

# Two local registries, a sample image, then copy / save / inspect / load / analyze.
demo: install
	$(PYTHON) scripts/demo.py
