# The two commands of the README: `make demo` and `make test`. Both set themselves up.
.PHONY: demo test lint unit bootstrap stack clean

bootstrap:
	@scripts/bootstrap.sh

## Run the main job end to end on the embedded default (moto + real HSDS on loopback).
demo: bootstrap
	.venv/bin/datacarousel demo $(ARGS)

## Run the whole test suite (lint, type checks, unit and integration tests).
test: bootstrap
	scripts/test.sh $(ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy .
	.venv/bin/lint-imports --no-cache

stack: bootstrap
	.venv/bin/python stack.py > stack.json

clean:
	rm -rf .venv .venv-* var build .mypy_cache .ruff_cache .pytest_cache
