# provkit: `make demo` runs the main job, `make test` runs every test. Both set up a fresh
# Debian machine first (scripts/setup-debian.sh, apt-get).
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
# Where tests keep downloads between runs (the Debian kernel package for VM tests).
export PROVKIT_CACHE ?= $(HOME)/.cache/provkit

.PHONY: demo test setup lint unit bench

setup:
	@if [ "$$(id -u)" = 0 ]; then scripts/setup-debian.sh; else sudo scripts/setup-debian.sh; fi

demo: setup
	scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...
	$(GO) vet -tags integration ./...
	$(GOBIN)/staticcheck -tags integration ./...

# All tests: unit tests, the PostgreSQL store suite against a real server on loopback, and the
# integration tests (root, network namespaces, qemu, Debian's daemons as peers). Under
# PROVKIT_INTEGRATION=require a missing prerequisite fails a test instead of skipping it.
test: setup lint
	scripts/test.sh

unit:
	$(GO) test ./...

bench: setup
	scripts/bench.sh
