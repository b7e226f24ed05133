# fkrollout — see README.md. Every target works on a fresh machine with Go,
# PostgreSQL and the Go module proxy.
TEMPORAL_VERSION := v1.5.1
# Temporal's determinism analyzer for workflow code (make vet).
WORKFLOWCHECK_VERSION := v0.6.0
BIN := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
WORKFLOWCHECK := $(BIN)/workflowcheck
export FKROLLOUT_TEMPORAL_CLI := $(TEMPORAL)
# The version the worker logs at start (and carries in its Temporal
# identity) and fkrollout version prints: git describe's in a git checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: test temporal build vet fmt workflowcheck

# The pinned Temporal CLI (dev server + UI), built from the Go module proxy.
temporal: $(TEMPORAL)
$(TEMPORAL):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

# bin/worker and the CLI, bin/fkrollout (built from ./starter).
build:
	@mkdir -p $(BIN)
	go build -ldflags "$(if $(VERSION),-X main.version=$(VERSION))" -o $(BIN)/worker ./worker
	go build -ldflags "$(if $(VERSION),-X main.buildVersion=$(VERSION))" -o $(BIN)/fkrollout ./starter

# The pinned workflowcheck, built from the Go module proxy.
$(WORKFLOWCHECK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

# Workflow code must be deterministic: workflowcheck follows every call a
# workflow makes (config: functions it misreads as non-deterministic).
workflowcheck: $(WORKFLOWCHECK)
	$(WORKFLOWCHECK) -config .ci/workflowcheck.yaml ./workflows/...

vet: $(WORKFLOWCHECK)
	gofmt -l . | (! grep .) && go vet ./...
	$(WORKFLOWCHECK) -config .ci/workflowcheck.yaml ./workflows/...

# The test command README gives and .ci/run calls.
test: $(TEMPORAL)
	go test -count=1 -timeout 45m ./...

# --- workflow: dev server, worker, demo -------------------------------------
.PHONY: devserver worker demo
TEMPORAL_PORT ?= 7233
TEMPORAL_UI_PORT ?= 8233
ROLLOUT_SEARCH_ATTRIBUTES := $(foreach a,RolloutPhase RolloutEnvironment RolloutStatus Requester,--search-attribute $(a)=Keyword)

# The Temporal dev server (UI on :8233) with fkrollout's search attributes,
# state kept in out/temporal.db. Foreground; Ctrl-C stops it.
devserver: $(TEMPORAL)
	@mkdir -p out
	$(TEMPORAL) server start-dev --port $(TEMPORAL_PORT) --ui-port $(TEMPORAL_UI_PORT) \
		--db-filename out/temporal.db $(ROLLOUT_SEARCH_ATTRIBUTES)

# The worker, configured by FKROLLOUT_CONFIG / FKROLLOUT_DSN_<ENV> and TEMPORAL_*.
worker: build
	$(BIN)/worker

# README's first command: a whole rollout of sql/migration.sql on local
# PostgreSQL and the dev server, gates approved by demo identities.
demo: $(TEMPORAL) build
	./scripts/demo.sh

# --- zero-stall benchmark (docs/PERFORMANCE.md) ------------------------------
.PHONY: bench
BENCH_ROWS ?= 2000000
# Six migrations of one FK under concurrent writers (naive / hand / fkrollout,
# each with and without a 10 s blocking write), fkrollout under a 60 s blocker
# queueing and retrying against waiting it out, wall time against psql, audit
# against sequential psql, load generator against pgbench. Takes minutes.
bench:
	@mkdir -p out
	go run ./bench/zerostall -rows $(BENCH_ROWS) -out out/bench.json -md out/bench.md

# --- orphan audit at scale (docs/PERFORMANCE.md) ------------------------------
.PHONY: bench-audit
AUDIT_MULTI_ROWS ?= 2000000
AUDIT_LARGE_ROWS ?= 20000000
# Pages read and wall time of the audit against per-FK anti-joins in psql
# (a multi-FK schema and the demo schema), and a large table audited in
# chunks with the p99 of concurrent writers. Takes minutes.
bench-audit:
	@mkdir -p out
	go run ./bench/auditscale -multi-rows $(AUDIT_MULTI_ROWS) -large-rows $(AUDIT_LARGE_ROWS) -out out/bench-audit.json -md out/bench-audit.md
