# Coord's Go module, client/go: stubs generated from protos/ (protoc-gen-go, protoc-gen-go-grpc), the
# helper package client/go/coord, examples run against a live server, and cmd/coord-bench.
#
# Built offline: no Go module proxy is reached. The dependencies' sources come from Debian's golang-*-dev
# packages (/usr/share/gocode/src), copied into client/go/vendor by client/go/offline/vendor.sh, and
# every go command runs with -mod=vendor and GOPROXY=off. go.mod states the versions a user elsewhere
# fetches the usual way; client/go/offline/packages.txt maps each to its Debian package.
#
#   make proto      also generates client/go/gen and builds the module (PROTO_EXTRA)
#   make go-test    go test ./... (COORD_TARGET=host:port of a running server; GO_TEST_ARGS=-v ...)
#   make go-lint    gofmt and go vet (run by `make lint`)
#   make go-module  the module as a GOPROXY tree (.zip, .mod, .info) under client/go/dist
#   make go-bench   cmd/coord-bench against COORD_TARGET (GO_BENCH_ARGS="-c 64 -d 10s")
GO_DIR := client/go
GO_MODULE := github.com/coord-dev/coord/client/go
# Versioned with the protos and the Python package: the tag client/go/v$(version) publishes it.
GO_MODULE_VERSION ?= v$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GO_SRC_ROOT ?= /usr/share/gocode/src
GO_WORK := $(GO_DIR)/.build
GO_GEN := $(GO_DIR)/gen
GO_VENDOR_STAMP := $(GO_DIR)/vendor/modules.txt
GO_GEN_STAMP := $(GO_WORK)/generated
GO_BUILD_STAMP := $(GO_WORK)/built
# The shipped service config, embedded by the coord package (go:embed needs a copy in its directory).
GO_SERVICE_CONFIG := $(GO_DIR)/coord/service_config.json
GO_SOURCES := $(shell find $(GO_DIR) -name '*.go' -not -path '$(GO_DIR)/gen/*' \
  -not -path '$(GO_DIR)/vendor/*' -not -path '$(GO_DIR)/.build/*' -not -path '$(GO_DIR)/dist/*' 2>/dev/null)
# Everything the go command writes stays in git-ignored client/go/.build, so a clean clone builds.
GO_ENV := GOFLAGS='-mod=vendor -modcacherw' GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on \
  CGO_ENABLED=0 GOCACHE='$(CURDIR)/$(GO_WORK)/cache' GOPATH='$(CURDIR)/$(GO_WORK)/gopath'
# packages.txt's package column: its module lines are those that start with a letter.
GO_DEBIAN_PACKAGES := $(shell awk '$$1 ~ /^[a-z]/ { print $$2 }' $(GO_DIR)/offline/packages.txt 2>/dev/null)

TOOLS += go:golang-go protoc-gen-go:protoc-gen-go protoc-gen-go-grpc:protoc-gen-go-grpc
PROTO_EXTRA += $(GO_BUILD_STAMP)
TEST_PREREQS += $(GO_BUILD_STAMP)
LINT_EXTRA += go-lint
CLEAN_EXTRA += $(GO_GEN) $(GO_DIR)/vendor $(GO_WORK) $(GO_DIR)/dist $(GO_SERVICE_CONFIG)

# The protos set no go_package (adding one would change them for every language), so each file gets
# its Go import path here: coord/cache/v1/cache.proto -> $(GO_MODULE)/gen/coord/cache/v1, package cachev1.
go_pkg_dir = $(patsubst %/,%,$(dir $(patsubst protos/%,%,$(1))))
go_pkg_name = $(subst /,,$(patsubst coord/%,%,$(call go_pkg_dir,$(1))))
go_mapping = M$(patsubst protos/%,%,$(1))=$(GO_MODULE)/gen/$(call go_pkg_dir,$(1));$(call go_pkg_name,$(1))
GO_PROTOC_OPTS := $(foreach f,$(PROTOS),'--go_opt=$(call go_mapping,$(f))' '--go-grpc_opt=$(call go_mapping,$(f))')

.PHONY: go-lint go-test go-module go-deps go-bench

# Debian packages without a command of their own (TOOLS cannot see them): installed like `make deps`
# does, as root, or a stop that names the apt-get line to run.
go-deps:
	@missing=$$(for p in $(GO_DEBIAN_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ -n "$(AS_ROOT)" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages; run: sudo apt-get install -y" $$missing >&2; exit 1; fi; \
	fi

# The vendor tree is rebuilt when go.mod or the package list changes.
$(GO_VENDOR_STAMP): $(GO_DIR)/go.mod $(GO_DIR)/offline/packages.txt $(GO_DIR)/offline/vendor.sh
	$(call install,go)
	$(MAKE) --no-print-directory go-deps
	bash $(GO_DIR)/offline/vendor.sh $(GO_SRC_ROOT) $(GO_DIR)

# Stubs are regenerated only when a .proto file changes.
$(GO_GEN_STAMP): $(PROTOS) $(STAMP) mk/go.mk
	$(call install,protoc-gen-go protoc-gen-go-grpc)
	rm -rf $(GO_GEN)
	mkdir -p $(GO_WORK)
	$(PY) -m grpc_tools.protoc -Iprotos \
	  --plugin=protoc-gen-go=$$(command -v protoc-gen-go) --plugin=protoc-gen-go-grpc=$$(command -v protoc-gen-go-grpc) \
	  --go_out=$(GO_DIR) --go_opt=module=$(GO_MODULE) --go-grpc_out=$(GO_DIR) --go-grpc_opt=module=$(GO_MODULE) \
	  $(GO_PROTOC_OPTS) $(PROTOS)
	touch $@

$(GO_SERVICE_CONFIG): client/coord_client/service_config.json
	cp $< $@

$(GO_BUILD_STAMP): $(GO_VENDOR_STAMP) $(GO_GEN_STAMP) $(GO_SERVICE_CONFIG) $(GO_SOURCES) $(GO_DIR)/go.mod
	cd $(GO_DIR) && $(GO_ENV) go build ./...
	touch $@

go-lint: $(GO_BUILD_STAMP)
	@unformatted=$$(cd $(GO_DIR) && gofmt -l $(patsubst $(GO_DIR)/%,%,$(GO_SOURCES))); \
	if [ -n "$$unformatted" ]; then echo "gofmt -w needed in $(GO_DIR):" $$unformatted >&2; exit 1; fi
	cd $(GO_DIR) && $(GO_ENV) go vet ./...

go-test: $(GO_BUILD_STAMP)
	cd $(GO_DIR) && $(GO_ENV) go test -count=1 $(GO_TEST_ARGS) ./...

# Cache reads through the Go stubs against COORD_TARGET (GO_BENCH_ARGS="-c 64 -d 10s"): one JSON line.
go-bench: $(GO_BUILD_STAMP)
	cd $(GO_DIR) && $(GO_ENV) go build -o .build/bin/coord-bench ./cmd/coord-bench
	$(GO_WORK)/bin/coord-bench $(GO_BENCH_ARGS)

# What a user could publish: the module in GOPROXY layout (the zip holds go.mod, the sources, the
# generated stubs and the service config; no vendor tree), for the tag client/go/$(GO_MODULE_VERSION).
# The zip is then checked as a user would get it: unpacked alone (with this vendor tree), it builds.
go-module: $(GO_BUILD_STAMP)
	rm -rf $(GO_DIR)/dist $(GO_WORK)/module-check
	$(PY) $(GO_DIR)/offline/module_zip.py $(GO_DIR) $(GO_MODULE) $(GO_MODULE_VERSION) LICENSE $(GO_DIR)/dist
	$(PY) -m zipfile -e $(GO_DIR)/dist/$(GO_MODULE)/@v/$(GO_MODULE_VERSION).zip $(GO_WORK)/module-check
	cd $(GO_WORK)/module-check/$(GO_MODULE)@$(GO_MODULE_VERSION) && ln -s $(CURDIR)/$(GO_DIR)/vendor vendor && \
	  $(GO_ENV) go build ./... && $(GO_ENV) go vet ./...
	rm -rf $(GO_WORK)/module-check
