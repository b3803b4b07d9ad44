# Coord's npm package, client/node (@coord/client): TypeScript stubs generated from protos/ by ts-proto,
# the thin layer over them (client/node/src), compiled by tsc to ESM + .d.ts in client/node/dist.
#
#   make proto       also installs the package's npm dependencies, generates and builds it (PROTO_EXTRA)
#   make node-test   its tests against a running server (COORD_TARGET=host:port); `make test` runs
#                    them through pytest (tests/clients/test_node_package.py), single node and Cluster
#   make node-lint   tsc --noEmit, strict, over the sources and, with checkJs, the tests and bench
#   make node-pack   the npm tarball, client/node/coord-client-<version>.tgz
#
# Each step is redone only when what it reads changed: npm ci when package-lock.json does, the
# generation when a .proto (or the service config, or the generator) does, tsc when a source does.
NODE_PKG := client/node
NODE_PKG_STAMPS := $(NODE_PKG)/.stamps
NODE_PKG_INSTALLED := $(NODE_PKG)/node_modules/.installed
NODE_PKG_GENERATED := $(NODE_PKG_STAMPS)/generated
NODE_PKG_BUILT := $(NODE_PKG_STAMPS)/built
NODE_PKG_SOURCES := $(shell find $(NODE_PKG)/src -name '*.ts' -not -path '$(NODE_PKG)/src/gen/*' 2>/dev/null)
NODE_PKG_VENDORED := $(wildcard $(NODE_PKG)/protos/google/rpc/*.proto)
NODE_TSC := node_modules/.bin/tsc

PROTO_EXTRA += $(NODE_PKG_BUILT)
TEST_PREREQS += $(NODE_PKG_BUILT)
LINT_EXTRA += node-lint
CLEAN_EXTRA += $(NODE_PKG)/node_modules $(NODE_PKG)/src/gen $(NODE_PKG)/dist $(NODE_PKG)/protos/coord \
  $(NODE_PKG_STAMPS) $(NODE_PKG)/LICENSE $(wildcard $(NODE_PKG)/*.tgz)

.PHONY: node-lint node-pack node-test

# npm packages exactly as locked, reinstalled only when the lock file changes.
$(NODE_PKG_INSTALLED): $(NODE_PKG)/package-lock.json $(NODE_PKG)/package.json | deps
	cd $(NODE_PKG) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# protoc (the venv's grpc_tools) with ts-proto from node_modules; see client/node/scripts/generate.mjs.
$(NODE_PKG_GENERATED): $(PROTOS) $(NODE_PKG_VENDORED) client/coord_client/service_config.json \
    $(NODE_PKG)/scripts/generate.mjs $(NODE_PKG_INSTALLED) $(STAMP)
	PROTOC='$(CURDIR)/$(PY) -m grpc_tools.protoc' node $(NODE_PKG)/scripts/generate.mjs
	mkdir -p $(NODE_PKG_STAMPS)
	touch $@

# A clean dist/ each time, so a source removed leaves no stale module behind.
$(NODE_PKG_BUILT): $(NODE_PKG_GENERATED) $(NODE_PKG_SOURCES) $(NODE_PKG)/tsconfig.json $(NODE_PKG)/package.json
	rm -rf $(NODE_PKG)/dist
	cd $(NODE_PKG) && $(NODE_TSC) -p tsconfig.json
	touch $@

node-lint: $(NODE_PKG_BUILT)
	cd $(NODE_PKG) && $(NODE_TSC) -p tsconfig.json --noEmit
	cd $(NODE_PKG) && $(NODE_TSC) -p tsconfig.check.json

# The tarball carries Coord's LICENSE, copied in (git-ignored) since npm packs only the package's folder.
node-pack: $(NODE_PKG_BUILT)
	cp LICENSE $(NODE_PKG)/LICENSE
	cd $(NODE_PKG) && npm pack --loglevel=error

node-test: $(NODE_PKG_BUILT)
	cd $(NODE_PKG) && node --test $(NODE_TEST_ARGS) test/unit/ test/live/
