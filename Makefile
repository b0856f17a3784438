# batchimg: `make run` for the demo, `make test` for the tests. Both provision
# what they need on a fresh machine (ImageMagick 7, the local S3 server).
SHELL := /bin/bash
CARGO ?= cargo
INPUT ?=

.PHONY: setup build run test lint deny bench scale crash-test docker clean

setup:
	@scripts/setup.sh

# The shipped binary without its debug info, which goes to batchimg.debug
# beside it (scripts/split-debug.sh). Each of build, test and lint hands setup
# the cargo command it runs next, so that on a fresh machine most of it compiles
# while ImageMagick does (scripts/setup.sh).
build:
	@scripts/setup.sh build --release --locked
	$(CARGO) build --release --locked
	@scripts/split-debug.sh target/release/batchimg

run: build
	@INPUT="$(INPUT)" scripts/demo.sh

test:
	@scripts/setup.sh test --locked --workspace --no-run
	$(CARGO) test --locked --workspace
	scripts/lint-deploy.sh

CLIPPY = clippy --locked --workspace --all-targets -- -D warnings
lint:
	@scripts/setup.sh $(CLIPPY)
	$(CARGO) fmt --all -- --check
	$(CARGO) $(CLIPPY)

# cargo-deny (deny.toml): advisories, licenses, bans and sources. Advisories
# come from the live RustSec database when it can be fetched, else from the
# snapshot in ../shared/advisory-db (scripts/advisory-snapshot.sh says which
# and its date); only with neither are they skipped, and one line says so.
DENY = .tools/bin/cargo-deny --workspace --locked
deny:
	@scripts/setup-deny.sh
	@if GIT_TERMINAL_PROMPT=0 timeout 300 $(DENY) fetch db >/dev/null 2>&1; then \
	  echo "[deny] advisories from the live RustSec database"; \
	  $(DENY) check --hide-inclusion-graph; \
	elif scripts/advisory-snapshot.sh; then \
	  $(DENY) --offline --config .tools/deny-offline.toml check --hide-inclusion-graph; \
	else \
	  $(DENY) check --hide-inclusion-graph licenses bans sources && \
	  echo "[deny] advisories SKIPPED: the RustSec database is unreachable and there is no snapshot"; \
	fi

# s3s-fs honours If-None-Match as AWS S3 does, so the bench runs as against AWS.
BENCH_ARGS ?= --head-before-put never
export BENCH_ARGS

bench: setup
	@scripts/setup-photos.sh
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench pipeline
	BENCH_THUMBS=1 $(CARGO) bench --locked --bench pipeline

crash-test: setup
	BATCHIMG_CRASH_ROUNDS=25 BATCHIMG_CRASH_ROWS=200 $(CARGO) test --locked --release --test it -- crash --nocapture

docker:
	docker build --build-arg BATCHIMG_COMMIT=$$(git rev-parse --short=12 HEAD 2>/dev/null) -t batchimg .

clean:
	$(CARGO) clean
	rm -rf outputs .batchimg

scale: build
	python3 scripts/scale.py
