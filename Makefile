PYTHON ?= python

.PHONY: test system install demo

# Debian packages the integration tests need (docker-registry, skopeo, umoci, ...).
system:
	bash tests/support/system.sh

install: system
	$(PYTHON) -m pip install -q -e '.[test]'

test: install
	$(PYTHON) -m pytest -q --timeout=900

demo:
	@echo "demo: not written yet" >&2; exit 1
