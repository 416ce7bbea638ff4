# kimi-free-api — every task a developer or CI runs. `make run` and `make test` are the two
# set-up commands of the README; both work on a fresh machine.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed

.PHONY: run build test lint unit sdk-test clean

## Build the release binary and start the server on :8000.
run:
	$(CARGO) build --release
	./target/release/kimi-free-api

build:
	$(CARGO) build --bins --examples

## Everything CI checks: lints, Rust unit and behaviour tests, the official SDKs.
test: lint unit sdk-test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

$(VENV_STAMP): tests/sdk/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
	touch $@

## The official Python SDKs against the real binary and the mock Kimi, on loopback.
sdk-test: build $(VENV_STAMP)
	cd tests/sdk && ../../$(VENV)/bin/python -m pytest -q -p no:cacheprovider

clean:
	$(CARGO) clean
	rm -rf $(VENV)
