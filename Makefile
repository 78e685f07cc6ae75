# transcoder: `make run` and `make test` do all the set-up on a fresh Debian machine with Go.
SHELL := /bin/bash
GO ?= go
BIN := bin/transcoder
GOBIN := $(shell $(GO) env GOPATH)/bin
GOLANGCI_VERSION := v2.15.0
NATS_LISTEN ?= 127.0.0.1:4222
DATA ?= .data

.PHONY: all deps tools build run test cluster-test fuzz soak lint bench bench-plots fmt vet clean

all: build

# deps installs what is missing: ffmpeg/ffprobe and chromium (the dashboard's browser test,
# which skips without it) from Debian (as root), and the Go modules.
deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing ffmpeg (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else \
	    echo "ffmpeg and ffprobe are required: sudo apt-get install -y ffmpeg" >&2; exit 1; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	      { echo "chromium could not be installed: the dashboard's browser test will skip" >&2; [ -z "$$CI" ] || exit 1; }; \
	  else \
	    echo "chromium not installed: the dashboard's browser test will skip (sudo apt-get install -y chromium)" >&2; \
	  fi; \
	fi
	@$(GO) mod download

# tools installs the real nats-server binary (tests of interoperability against an external
# server skip without it) into GOBIN, and builds SeaweedFS once into the cache directory: the
# S3-compatible server the storage tests run on loopback (about 4 minutes the first time).
NATS_SERVER_VERSION := v2.15.2
tools: $(GOBIN)/nats-server
	@./scripts/seaweedfs.sh >/dev/null
$(GOBIN)/nats-server:
	$(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

build: deps
	$(GO) build -o $(BIN) ./cmd/transcoder

# run starts a worker on the embedded NATS, transcodes a 10 s lavfi sample with a progress bar,
# prints the output with an ffprobe summary, and keeps serving until Ctrl-C.
run: build
	@./scripts/demo.sh $(BIN) $(NATS_LISTEN) $(DATA)

# test runs every test with the race detector against real ffmpeg and embedded NATS servers,
# then every benchmark once so none of them rots.
test: deps tools
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./...
	./scripts/fuzz.sh $(FUZZTIME)

# cluster-test runs only the cluster test (also part of make test): a real three-node
# nats-server cluster, three worker processes, the job stream's leader node SIGKILLed mid-burst
# and restarted; every job once, a fair share each, the workers fail over by themselves (~30 s).
cluster-test: deps $(GOBIN)/nats-server
	$(GO) test -race -count=1 -v -run '^TestClusterNodeKilled$$' -timeout 10m ./worker

# fuzz runs every fuzz target for FUZZTIME each (make test: 5s; longer by hand).
FUZZTIME ?= 5s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# soak is a long mixed run (good, bad and hostile inputs, random worker kills) that prints its
# figures; not part of CI. SOAK=10m make soak
SOAK ?= 10m
soak: deps
	./scripts/soak.sh $(SOAK)

lint: $(GOBIN)/golangci-lint
	$(GOBIN)/golangci-lint run ./...

$(GOBIN)/golangci-lint:
	GOFLAGS=-mod=mod $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

# bench runs the benchmark set (a few minutes) and keeps the output in $(BENCH_OUT);
# bench-plots draws the figures next to bench/README.md from it.
BENCH_OUT ?= bench/out
bench: deps
	@mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -bench . -benchtime 200x ./bufpool ./pipeline | tee $(BENCH_OUT)/buffers.txt
	BENCH_OUT=$(abspath $(BENCH_OUT)) $(GO) test -run '^$$' -bench ChunkLatency -benchtime 2000x ./bench | tee $(BENCH_OUT)/chunklatency.txt
	BENCH_OUT=$(abspath $(BENCH_OUT)) $(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./bench/e2e | tee $(BENCH_OUT)/e2e.txt

bench-plots: bench
	$(GO) run ./bench/plot -in $(BENCH_OUT) -out bench

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin $(DATA)
