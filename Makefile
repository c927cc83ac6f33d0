# The two commands of the README: `make demo` and `make test`. Both set themselves up.
.PHONY: demo test test-unit lint bootstrap stack clean

bootstrap:
	@scripts/bootstrap.sh

## Run the main job end to end on the embedded default (moto + real HSDS on loopback).
demo: bootstrap
	.venv/bin/datacarousel demo $(ARGS)

## Run the whole test suite (lint, type checks, unit and integration tests).
test: bootstrap
	scripts/test.sh $(ARGS)

## The fast loop: every test that starts no server (tests asking for the embedded environment are
## marked integration automatically, see tests/conftest.py) and builds no image, on every core.
test-unit: bootstrap
	.venv/bin/python -m pytest -m "not integration and not containers" -q -n auto $(ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy .
	.venv/bin/lint-imports --no-cache

stack: bootstrap
	.venv/bin/python stack.py > stack.json.part && mv stack.json.part stack.json  # no empty stack.json on failure

clean:
	rm -rf .venv .venv-* var build .mypy_cache .ruff_cache .pytest_cache
