# Shortcuts for the scripts in scripts/ (the README's quickstart uses those directly).
.PHONY: demo test setup bench

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

bench:
	.venv/bin/python bench/copy_bench.py
