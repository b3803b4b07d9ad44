# Coord — `make run` starts the server, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN := client/coord
GEN_STAMP := $(GEN)/.generated
export PYTHONPATH := $(CURDIR)/server:$(CURDIR)/client
# The Node.js client suite (tests/polyglot) and its npm packages, installed from the lock file.
NODE_DIR := tests/polyglot
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
# buf breaking compares the protos of the working tree with those of the main branch (FILE rules,
# the strictest: what generated code in any language would notice). Any buf input may replace it,
# for example BUF_AGAINST=old-image.binpb.
BUF_AGAINST ?= .git\#branch=main,subdir=protos

.PHONY: all run test test-polyglot lint proto bench fmt clean node

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

# Stubs are regenerated only when a .proto file changes.
$(GEN_STAMP): $(PROTOS) $(STAMP)
	rm -rf $(GEN)
	mkdir -p $(GEN)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=client --grpc_python_out=client \
	  --mypy_out=client --mypy_grpc_out=client $(PROTOS)
	find $(GEN) -type d -exec touch {}/__init__.py \;
	touch $@

proto: $(GEN_STAMP)

# npm packages are reinstalled (exactly as locked) only when the lock file changes.
$(NODE_STAMP): $(NODE_DIR)/package-lock.json $(NODE_DIR)/package.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_STAMP)

run: $(GEN_STAMP)
	$(PY) -m coord_server

test: $(GEN_STAMP) $(NODE_STAMP)
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# Only the Node.js client suite and the service-config checks, against single node and cluster.
test-polyglot: $(GEN_STAMP) $(NODE_STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/polyglot $(PYTEST_ARGS)

lint: $(GEN_STAMP)
	$(VENV)/bin/ruff check server client tests bench
	$(VENV)/bin/ruff format --check server client tests bench
	$(VENV)/bin/mypy server/coord_server client/coord_client
	cd protos && ../$(VENV)/bin/buf lint
	$(VENV)/bin/buf breaking protos --against '$(BUF_AGAINST)'

fmt: $(STAMP)
	$(VENV)/bin/ruff format server client tests bench
	$(VENV)/bin/ruff check --fix server client tests bench

bench: $(GEN_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(GEN) .mypy_cache .ruff_cache $(NODE_DIR)/node_modules
