# tokenrevocation: every target runs from a fresh clone. `make test` is the
# one command that runs every check and test; CI (.ci/run) calls it.
.PHONY: deps test unit yaegi_test e2e traefik37 lint fmt-check vet vendor vendor-check tools traefik hydra demo demo-once bench bench-quick bench-memory bench-coldstart clean

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export GOFLAGS := -buildvcs=false
BIN := $(CURDIR)/.cache/bin
YAEGI := $(BIN)/yaegi
GOLANGCI_LINT := $(BIN)/golangci-lint
YAEGI_GOPATH := $(CURDIR)/.cache/yaegi-gopath
PKG := github.com/edgerevoke/tokenrevocation

test: deps fmt-check vet vendor-check lint unit yaegi_test e2e traefik37 demo-once

# Installs the system packages the tests need (redis-server, gcc, wrk, ...)
# when they are missing, with apt-get; see scripts/deps.sh.
deps:
	scripts/deps.sh

# Unit tests of the plugin, compiled, with the race detector.
unit: deps
	go test -race -count=1 ./...

# The same unit tests run by Yaegi, the interpreter Traefik loads plugins with.
# `yaegi test .` does not find vendor/, so the package is laid out in a GOPATH.
yaegi_test: deps $(YAEGI)
	rm -rf $(YAEGI_GOPATH) && mkdir -p $(YAEGI_GOPATH)/src/github.com/edgerevoke
	ln -s $(CURDIR) $(YAEGI_GOPATH)/src/$(PKG)
	for pkg in $$(go list ./...); do \
		log=$(CURDIR)/.cache/yaegi-test-$$(echo $$pkg | tr / _).log; \
		echo "yaegi test $$pkg"; \
		(cd $(YAEGI_GOPATH)/src/$(PKG) && GOPATH=$(YAEGI_GOPATH) GO111MODULE=off \
			$(YAEGI) test -unsafe -unrestricted -v $$pkg) >$$log 2>&1 || true; \
		grep -E '^(--- |PASS|FAIL|ok)' $$log || true; \
		grep -q '^PASS$$' $$log && ! grep -q -- '--- FAIL' $$log || { echo "FAIL: yaegi test $$pkg (see $$log)"; exit 1; }; \
	done

# Yaegi loader test, Traefik-style config decoding, and the real-Traefik suite.
e2e: deps traefik hydra
	cd e2e && go test -count=1 -timeout 45m -v ./... 2>&1 | tee $(CURDIR)/.cache/e2e-test.log | grep -E '^(--- |ok|FAIL|PASS|panic)|_test.go'

# The plugin through Traefik v3.7.13's own plugin loader (pkg/plugins), in
# process, with Redis replication across two processes. A module of its
# own: v3.7.13's binary does not build here, its loader package does.
traefik37: deps
	mkdir -p .cache
	cd e2e/traefik37 && go test -count=1 -v ./... 2>&1 | tee $(CURDIR)/.cache/traefik37-test.log | grep -E '^(--- |ok|FAIL|PASS|panic)|_test.go'

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...
	cd e2e && $(GOLANGCI_LINT) run ./...
	cd e2e/traefik37 && $(GOLANGCI_LINT) run ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^vendor/')); \
		if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

vet:
	go vet ./...
	cd e2e && go vet ./...
	cd e2e/traefik37 && go vet ./...

vendor:
	go mod tidy && go mod vendor

# go mod vendor must leave vendor/ exactly as committed.
vendor-check:
	go mod vendor && git diff --exit-code -- vendor go.mod go.sum && \
		test -z "$$(git status --porcelain -- vendor)"

tools: $(YAEGI) $(GOLANGCI_LINT)

$(YAEGI):
	GOBIN=$(BIN) go install github.com/traefik/yaegi/cmd/yaegi@v0.16.1

$(GOLANGCI_LINT):
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

# Builds the pinned Traefik once into .cache/ (about 5 minutes the first time).
traefik:
	scripts/build-traefik.sh

# Builds the pinned Ory Hydra once into .cache/ (cgo, needs gcc; about 10
# minutes the first time), the real OpenID provider of the e2e suite.
hydra: deps
	scripts/build-hydra.sh

# Traefik, the identity stand-in and an API on loopback, walked through
# token -> call -> revoke -> call. Stays up until Ctrl-C.
demo: traefik
	cd e2e && go build -o $(BIN)/demo ./cmd/demo
	$(BIN)/demo

# The demo's walk-through once; exits non-zero on any unexpected result.
demo-once: traefik
	cd e2e && go build -o $(BIN)/demo ./cmd/demo
	$(BIN)/demo -once

# One benchmark run (about 5 minutes): see BENCHMARKS.md. BENCH_ARGS passes
# flags, e.g. BENCH_ARGS="-rounds 5 -preload 100000".
bench: deps traefik
	cd e2e && go build -o $(BIN)/bench ./cmd/bench
	$(BIN)/bench -out $(CURDIR)/.cache/bench.md $(BENCH_ARGS)

# The quick variant (4.5 minutes on 2 cores, BENCHMARKS.md): cases (a) to (f) in 3
# rounds of 3 s with 100,000 entries preloaded, and a cold start against
# 100,000 revocations.
bench-quick: deps traefik
	cd e2e && go build -o $(BIN)/bench ./cmd/bench
	$(BIN)/bench -rounds 3 -duration 3s -preload 100000 -coldstart 100000 -rules 10000 -out $(CURDIR)/.cache/bench-quick.md

# The memory probe: 1,000,000 entries recorded through the revoke path (in
# bigcache), and the empty plugin against the no-op plugin. Entries loaded at
# start are measured by bench-coldstart, at 1,000,000 and 10,000,000 (a
# denylist of the bench's size cannot hold 10,000,000 recorded entries: its
# lanes admit 986,688 each).
bench-memory: deps traefik
	cd e2e && go build -o $(BIN)/bench ./cmd/bench
	$(BIN)/bench -only memory -preload 1000000 -out $(CURDIR)/.cache/bench-memory-1m.md

# Cold start against 1,000,000 and 10,000,000 revocations in Redis: times,
# load CPU and RSS per loaded entry (about 4 and 12 minutes).
bench-coldstart: deps traefik
	cd e2e && go build -o $(BIN)/bench ./cmd/bench
	$(BIN)/bench -only coldstart -coldstart 1000000 -out $(CURDIR)/.cache/bench-coldstart-1m.md
	$(BIN)/bench -only coldstart -coldstart 10000000 -out $(CURDIR)/.cache/bench-coldstart-10m.md

clean:
	rm -rf .cache
