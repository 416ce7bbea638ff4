# kimi-free-api — every task a developer or CI runs. `make run` and `make test` are the two
# set-up commands of the README; both work on a fresh machine (missing tools are installed
# from crates.io, PyPI and Debian by the targets below).

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
CLI_STAMP := tests/cli/node_modules/.installed

MUSL_TARGET := x86_64-unknown-linux-musl
RELEASE_BIN := target/$(MUSL_TARGET)/release/kimi-free-api
IMAGE := localhost/kimi-free-api:latest
BUILDAH := buildah --storage-driver vfs
# Reproducible release builds: no build path and no registry path in the binary.
RELEASE_FLAGS := --remap-path-prefix=$(CURDIR)=/build --remap-path-prefix=$(HOME)/.cargo=/cargo
MAX_BINARY_BYTES := 4600000
# Tools built from crates.io when missing (cargo-deny, cargo-mutants) go here, outside the clone,
# so that they are built once per machine, not once per clone.
TOOLS := $(HOME)/.cache/kimi-free-api
export PATH := $(TOOLS)/bin:$(PATH)

.PHONY: bench cli-deps run demo doctor build test sdk-deps lint source-check unit unit-build unit-lanes \
        unit-waits unit-hardening unit-rest sdk-test release reproducible image image-test unit-check deny \
        vendor-check mutants musl-toolchain promtool ss clean

## Build the release binary and start the server on :8000.
run:
	$(CARGO) build --release
	./target/release/kimi-free-api

## Try it without a Kimi account: the mock Kimi and the server on free loopback ports, a token
## of each kind and commands to paste (examples/demo.rs); Ctrl-C stops both.
demo:
	$(CARGO) build --bin kimi-free-api --example demo
	./target/debug/examples/demo

## Check the token in $KIMI_TOKEN against Kimi step by step (the token is never printed; a
## rotated 2026 login is saved in ./kimi-state, where `make run` finds it). DOCTOR_ARGS=--rotate
## logs in with a 2026 token whose rotation ./kimi-state does not hold (README "The doctor").
DOCTOR_ARGS ?=
doctor:
	$(CARGO) build --release
	./target/release/kimi-free-api doctor $(DOCTOR_ARGS)

build:
	$(CARGO) build --bins --examples

## The server against the bare mock Kimi, both backends, as ratios (target/bench/report.md).
bench: release
	$(CARGO) bench --locked --bench proxy
	$(CARGO) bench --locked --bench sessions

## Everything CI checks. The test binaries spend most of their time waiting, so the SDKs and CLIs
## (network, a little CPU) install beside them, and the reproducibility rebuild (CPU) runs beside
## the SDK and CLI suites (which mostly wait on their clients). Each one's output is printed when
## it ends.
test: lint source-check vendor-check deny unit-check unit-build
	$(MAKE) --no-print-directory -j4 --output-sync=target unit-lanes sdk-deps
	$(MAKE) --no-print-directory image-test
	$(MAKE) --no-print-directory -j2 --output-sync=target reproducible sdk-test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## The original project hid its payload after ~1000 spaces on one line: refuse long lines and
## runs of trailing white space in every tracked text file, and any build script. The RustSec
## advisories in .ci/advisory-db are data copied verbatim (prose lines may be long), not code.
## Every tracked Rust file under src/, tests/, benches/ and examples/ stays within 800 lines.
source-check:
	@bad=$$(git ls-files -z ':!:.ci/advisory-db' | xargs -0 awk 'length($$0) > 200 || /[ \t]{8,}$$/ { print FILENAME ":" FNR; exit }'); \
	if [ -n "$$bad" ]; then echo "long line or trailing white space at: $$bad"; exit 1; fi
	@if git ls-files | grep -q '\(^\|/\)build\.rs$$'; then echo "a build.rs is not allowed"; exit 1; fi
	@big=$$(git ls-files -z 'src/*.rs' 'tests/*.rs' 'benches/*.rs' 'examples/*.rs' | xargs -0 -r wc -l \
		| awk '$$2 != "total" && $$1 > 800 { print $$2 " (" $$1 " lines)" }'); \
	if [ -n "$$big" ]; then echo "Rust files over 800 lines:"; echo "$$big"; exit 1; fi
	@echo "source-check: no long lines, no trailing white space runs, no build script, no Rust file over 800 lines"

## vendor/tiny_http is the published tiny_http 0.12.0 plus vendor/tiny_http.patch, exactly.
vendor-check:
	vendor/check.sh

## The unit and behaviour tests. Once built, the test binaries run in three lanes side by side:
## most of their time is waiting (drains, idle timeouts, a minute for idle workers to exit), not
## CPU. Each lane's output is printed when it ends.
UNIT_WAITS := shutdown_and_load
UNIT_HARDENING := hardening pool kimi_autumn_pool
UNIT_REST := $(filter-out $(UNIT_WAITS) $(UNIT_HARDENING),$(basename $(notdir $(wildcard tests/*.rs))))
unit: unit-build
	$(MAKE) --no-print-directory -j3 --output-sync=target unit-lanes

unit-build: promtool ss
	$(CARGO) test --no-run

unit-lanes: unit-waits unit-hardening unit-rest
unit-waits:
	$(CARGO) test $(addprefix --test ,$(UNIT_WAITS))
unit-hardening:
	$(CARGO) test $(addprefix --test ,$(UNIT_HARDENING))
unit-rest:
	$(CARGO) test --lib --bins $(addprefix --test ,$(UNIT_REST))
	$(CARGO) test --doc

## promtool checks /metrics in the pool tests (Debian's prometheus package has it).
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus; }

## ss reads the listen backlog in tests/listen_backlog.rs (Debian's iproute2 package has it).
ss:
	@command -v ss >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }

$(VENV_STAMP): tests/sdk/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
	touch $@

sdk-deps: $(VENV_STAMP) $(CLI_STAMP)

## Claude Code and Gemini CLI, pinned by tests/cli/package-lock.json.
$(CLI_STAMP): tests/cli/package.json tests/cli/package-lock.json
	cd tests/cli && npm ci --no-fund --no-audit --loglevel=error
	touch $@

cli-deps: $(CLI_STAMP)

## The official Python SDKs and the two CLIs against the real binary and the mock Kimi.
sdk-test: build $(VENV_STAMP) $(CLI_STAMP)
	cd tests/sdk && ../../$(VENV)/bin/python -m pytest -q -p no:cacheprovider

## Licenses, bans and sources of every dependency, and RustSec advisories: against the live
## database when it can be fetched, else against the snapshot in .ci/advisory-db (it says which).
deny:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked --root $(TOOLS) cargo-deny@0.20.2
	$(CARGO) deny check bans licenses sources
	.ci/advisories.sh

## Mutation testing of the pure protocol files with their unit tests (not part of `make test`:
## about half an hour on 2 cores). Survivors are listed in target/mutants/mutants.out/missed.txt.
MUTANTS_VERSION := 27.1.0
MUTANTS_FILES := src/kimi/legacy/sse.rs src/kimi/connect/envelope.rs src/kimi/connect/event.rs \
                 src/kimi/legacy/event.rs src/kimi/token.rs src/chat/mod.rs
mutants:
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked --root $(TOOLS) cargo-mutants@$(MUTANTS_VERSION)
	$(CARGO) mutants --no-shuffle --timeout 60 --output target/mutants $(addprefix -f ,$(MUTANTS_FILES)) \
	  --cargo-arg=--lib $(MUTANTS_ARGS)

musl-toolchain:
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq musl-tools; }

## The static musl binary (LTO, stripped, panics still unwind so one request cannot kill the
## server); fails if it grows past 4.5 MB.
release: musl-toolchain
	RUSTFLAGS="$(RELEASE_FLAGS)" $(CARGO) build --release --locked --target $(MUSL_TARGET)
	@size=$$(stat -c %s $(RELEASE_BIN)); echo "$(RELEASE_BIN): $$size bytes"; \
	[ $$size -le $(MAX_BINARY_BYTES) ] || { echo "binary over $(MAX_BINARY_BYTES) bytes"; exit 1; }
	@sha256sum $(RELEASE_BIN)

## A second release build, from a clean target directory elsewhere (target/repro), must be
## byte-identical to `make release`'s (one compile fewer than two fresh ones, same proof).
reproducible: release
	rm -rf target/repro
	RUSTFLAGS="$(RELEASE_FLAGS)" CARGO_TARGET_DIR=target/repro $(CARGO) build --release --locked \
	  --target $(MUSL_TARGET)
	cmp $(RELEASE_BIN) target/repro/$(MUSL_TARGET)/release/kimi-free-api
	sha256sum target/repro/$(MUSL_TARGET)/release/kimi-free-api

## The FROM-scratch image, built with buildah (its empty /data comes from target/image-root/).
image: release
	@command -v buildah >/dev/null || { apt-get update -qq && apt-get install -y -qq buildah; }
	rm -rf target/image-root && mkdir -p target/image-root && mkdir -m 0700 target/image-root/data
	$(BUILDAH) bud --isolation chroot --format docker --quiet -f Containerfile -t $(IMAGE) .
	@$(BUILDAH) images --format '{{.Name}}:{{.Tag}} {{.Size}}' $(IMAGE)

## Runs the image's binary against the mock Kimi: only the binary and /data in it, /ping, and a
## chat completion with a 2026 web refresh token whose rotated login is saved in /data.
image-test: image build
	tests/image.sh $(IMAGE) target/debug/examples/mock_kimi

## The systemd units: `systemd-analyze verify` clean and every service's security exposure at
## most 2.0 (every .service in deploy/, so a new unit cannot slip through unhardened).
unit-check: build
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd; }
	@tmp=$$(mktemp -d); \
	for unit in deploy/*.service deploy/*.timer; do \
	  sed "s|^ExecStart=/usr/local/bin/kimi-free-api|ExecStart=$(CURDIR)/target/debug/kimi-free-api|" \
	    $$unit > $$tmp/$${unit#deploy/}; done; \
	out=$$(systemd-analyze verify $$tmp/* 2>&1); rc=$$?; rm -rf $$tmp; \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "systemd-analyze verify: $$out"; exit 1; fi
	@units=$$(ls deploy/*.service); [ -n "$$units" ] || { echo "no .service unit in deploy/"; exit 1; }; \
	for unit in $$units; do \
	  out=$$(systemd-analyze security --offline=yes --threshold=20 $$unit 2>&1) \
	    || { echo "$$out"; echo "$$unit: security exposure above 2.0"; exit 1; }; \
	  echo "$$unit: $$(echo "$$out" | tail -n 1)"; done

clean:
	$(CARGO) clean
	rm -rf $(VENV) tests/cli/node_modules
