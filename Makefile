# Coord — `make run` starts the server, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN := client/coord
GEN_STAMP := $(GEN)/.generated
# Envoy's rate limit service protos (vendor/protos/README.md), generated beside the coord package.
VENDOR_PROTOS := $(shell find vendor/protos -name '*.proto')
GEN_VENDOR := client/envoy
export PYTHONPATH := $(CURDIR)/server:$(CURDIR)/client
# The Node.js client suite (tests/polyglot) and its npm packages, installed from the lock file.
NODE_DIR := tests/polyglot
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
# buf breaking compares the protos of the working tree with those of the main branch (FILE rules,
# the strictest: what generated code in any language would notice). Any buf input may replace it,
# for example BUF_AGAINST=old-image.binpb.
BUF_AGAINST ?= .git\#branch=main,subdir=protos

# System tools, one per line as command:Debian-package. `make deps` (the first step of `make test`)
# checks that each command is on PATH; what is missing it installs with apt-get when run as root, and
# otherwise it stops with the one apt-get line to run. A new tool is one more line here.
TOOLS := \
  redis-server:redis-server \
  redis-cli:redis-tools \
  redis-sentinel:redis-sentinel \
  node:nodejs \
  npm:npm \
  faketime:faketime
command_of = $(word 1,$(subst :, ,$(1)))
package_of = $(word 2,$(subst :, ,$(1)))
# Make's own PATH lookup: the check starts no process, so `make test` stays cheap once all is there.
on_path = $(firstword $(wildcard $(addsuffix /$(1),$(subst :, ,$(PATH)))))
# The packages of those of the commands $(1) that are not on PATH.
missing = $(sort $(foreach tool,$(TOOLS),$(if $(filter $(call command_of,$(tool)),$(1)),$(if \
  $(call on_path,$(call command_of,$(tool))),,$(call package_of,$(tool))))))
# $(call install,commands): as a recipe line, nothing when all of them are on PATH; else apt-get
# (one update, one install) as root, or a stop that names the one line to run.
install = $(if $(call missing,$(1)),$(if $(AS_ROOT),apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq $(call missing,$(1)) >/dev/null,$(error missing system packages; run: sudo \
  apt-get install -y $(call missing,$(1)))))
# Whether apt-get may run, as root; asked only when something is missing (AS_ROOT= says no).
AS_ROOT ?= $(filter 0,$(shell id -u))

.PHONY: all run test test-polyglot lint proto bench soak fmt clean node deps

# The other languages' client packages (client/node, client/go) each bring a fragment in mk/: what it
# adds to TOOLS, to what `make proto` builds (PROTO_EXTRA), to what `make test` needs first
# (TEST_PREREQS), to `make lint` (LINT_EXTRA, targets run after the Python checks) and to `make clean`.
PROTO_EXTRA :=
TEST_PREREQS :=
LINT_EXTRA :=
CLEAN_EXTRA :=
include $(wildcard mk/*.mk)

all: $(GEN_STAMP)

# The virtualenv is rebuilt only when a requirements file or pyproject.toml changes.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	# The generated stubs (client/coord) are made after install: put both source roots on sys.path.
	printf '%s\n' "$(CURDIR)/server" "$(CURDIR)/client" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/coord-paths.pth"
	touch $@

# Stubs are regenerated only when a .proto file changes (Coord's or a vendored one).
$(GEN_STAMP): $(PROTOS) $(VENDOR_PROTOS) $(STAMP)
	rm -rf $(GEN) $(GEN_VENDOR)
	mkdir -p $(GEN)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos -Ivendor/protos \
	  --python_out=client --grpc_python_out=client \
	  --mypy_out=client --mypy_grpc_out=client $(PROTOS) $(VENDOR_PROTOS)
	find $(GEN) $(GEN_VENDOR) -type d -exec touch {}/__init__.py \;
	touch $@

proto: $(GEN_STAMP) $(PROTO_EXTRA)

# Installs what TOOLS lists and this machine lacks (see above); does nothing when all is there.
deps:
	$(call install,$(foreach tool,$(TOOLS),$(call command_of,$(tool))))

# npm packages are reinstalled (exactly as locked) only when the lock file changes.
$(NODE_STAMP): $(NODE_DIR)/package-lock.json $(NODE_DIR)/package.json | deps
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_STAMP)

run: $(GEN_STAMP)
	$(PY) -m coord_server

test: deps $(GEN_STAMP) $(NODE_STAMP) $(TEST_PREREQS)
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# Only the Node.js client suite and the service-config checks, against single node and cluster.
test-polyglot: deps $(GEN_STAMP) $(NODE_STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/polyglot $(PYTEST_ARGS)

lint: $(GEN_STAMP)
	$(VENV)/bin/ruff check server client tests bench
	$(VENV)/bin/ruff format --check server client tests bench
	$(VENV)/bin/mypy server/coord_server client/coord_client
	cd protos && ../$(VENV)/bin/buf lint
	$(VENV)/bin/buf breaking protos --against '$(BUF_AGAINST)'
	$(if $(LINT_EXTRA),$(MAKE) $(LINT_EXTRA))

fmt: $(STAMP)
	$(VENV)/bin/ruff format server client tests bench
	$(VENV)/bin/ruff check --fix server client tests bench

bench: $(GEN_STAMP)
	$(call install,redis-server)
	$(PY) -m bench $(BENCH_ARGS)

# The soak test (not part of `make test`): a steady mixed load, 30 minutes unless MINUTES=5 says
# otherwise; SOAK_ARGS passes any other flag of `python -m bench.soak` (SOAK_ARGS="--minutes 5").
soak: $(GEN_STAMP)
	$(call install,redis-server)
	$(PY) -m bench.soak $(if $(MINUTES),--minutes $(MINUTES)) $(SOAK_ARGS)

clean:
	rm -rf $(GEN) $(GEN_VENDOR) .mypy_cache .ruff_cache $(NODE_DIR)/node_modules $(CLEAN_EXTRA)
