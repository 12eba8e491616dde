# AFVS: the AF_XDP Virtual Server.
#
#   make demo    build the binaries and run the demo in namespaces (root):
#                VS/DR, VS/TUN and VS/NAT of an IPv4 VIP and of an IPv6 one
#   make test    install what the tests need, then run every test (root for the
#                namespace, XDP and AF_XDP tests)
#   make bench   packet-rate benchmark in namespaces, plus the Go micro-benchmarks
#   make lint    golangci-lint with .golangci.yaml (builds the pinned version
#                from tools/go.mod into bin/ the first time)
#   make fuzz    every fuzz target in turn, FUZZTIME each (default 30s), then
#                executions per target

GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build deps demo test test-race test-short bench vet lint fuzz clean

all: build

# Debian packages the demo and tests use: iproute2 (ip netns, ip link) and
# keepalived (VRRP for the HA pair's tests and `afvs-lab demo --ha`).
deps:
	@command -v ip >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iproute2; }
	@command -v keepalived >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq keepalived; }
	@$(GO) mod download

# afvs is the daemon, afvsadm its ipvsadm-style client, afvs-lab the lab
# and research tools (demo, bench, sim, replay), which run bin/afvs.
build: deps
	$(GO) build -o $(BIN)/afvs ./cmd/afvs
	$(GO) build -o $(BIN)/afvsadm ./cmd/afvsadm
	$(GO) build -o $(BIN)/afvs-lab ./cmd/afvs-lab

demo: build
	./$(BIN)/afvs-lab demo

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# golangci-lint is pinned in tools/go.mod, a module of its own so the main
# module's go.mod lists only what AFVS links; go install builds it from the
# module proxy. A version change in tools/go.mod rebuilds it.
GOLANGCI := $(BIN)/golangci-lint
$(GOLANGCI): tools/go.mod tools/go.sum
	cd tools && GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	@touch $@

lint: $(GOLANGCI)
	$(GOLANGCI) run ./...

FUZZTIME         ?= 30s
FUZZMINIMIZETIME ?= 2s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINIMIZETIME=$(FUZZMINIMIZETIME) ./tools/fuzz.sh

test: deps vet
	$(GO) test -count=1 -timeout 12m $(PKGS)

# The race detector over the packages and over the daemon itself in the
# end-to-end tests (slower; not part of CI's time budget).
test-race: deps
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	AFVS_E2E_RACE=1 $(GO) test -count=1 ./cmd/afvs/

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Packet rates in namespaces (root), then the micro-benchmarks whose figures
# the README quotes. Compare figures only within one run.
bench: build
	./$(BIN)/afvs-lab bench --rounds 3
	$(GO) test -run '^$$' -bench 'Process|WorkerPoll' -benchtime 300000x ./dataplane/ ./dataplane/director/
	$(GO) test -run '^$$' -bench 'WorkerNewConns|TwoWorkers|TestPort' -benchtime 20000x ./dataplane/director/
	$(GO) test -run '^$$' -bench 'Lookup|Insert|MemoryFloor' -benchtime 100000x ./conntrack/
	$(GO) test -run '^$$' -bench 'GCPause' -benchtime 2000x ./conntrack/
	$(GO) test -run '^$$' -bench 'Schedule|Scan|Hooks' -benchtime 200000x ./sched/
	$(GO) test -run '^$$' -bench 'MaglevBuild' -benchtime 20x ./sched/
	$(GO) test -run '^$$' -bench 'Paired' -benchtime 2000x ./dataplane/xsk/
	$(GO) test -run '^$$' -bench . ./internal/header/ ./encap/ ./dataplane/xdpprog/

clean:
	rm -rf $(BIN)
