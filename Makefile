# batchimg: `make run` for the demo, `make test` for the tests. Both provision
# what they need on a fresh machine (ImageMagick 7, the local S3 server).
SHELL := /bin/bash
CARGO ?= cargo
INPUT ?=

.PHONY: setup build run test lint bench scale crash-test docker clean

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

run: build
	@INPUT="$(INPUT)" scripts/demo.sh

test: setup
	$(CARGO) test --locked
	scripts/lint-deploy.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# s3s-fs honours If-None-Match as AWS S3 does, so the bench runs as against AWS.
BENCH_ARGS ?= --head-before-put never
export BENCH_ARGS

bench: setup
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench pipeline

crash-test: setup
	BATCHIMG_CRASH_ROUNDS=25 BATCHIMG_CRASH_ROWS=200 $(CARGO) test --locked --release --test it -- crash --nocapture

docker:
	docker build --build-arg BATCHIMG_COMMIT=$$(git rev-parse --short=12 HEAD 2>/dev/null) -t batchimg .

clean:
	$(CARGO) clean
	rm -rf outputs .batchimg

scale: build
	python3 scripts/scale.py
