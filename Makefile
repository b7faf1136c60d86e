# Tilores X Mesh. The two commands a new machine needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GEN := gen/python
DATA_DIR ?= .data
CUSTOMERS ?= 1000
PROTOS := $(wildcard protos/tilores_x/v1/*.proto)

.PHONY: run test lint fmt protos seed customers bench eval soak chaos envoy-config k8s clean redis-server promtool postgresql console-assets browser screenshots netfilter

REPLICAS ?=
# A Debian package may start its service (Prometheus on :9090, PostgreSQL on :5432) under systemd;
# the tests start their own on free ports, and the mesh's Envoy needs :9090.
stop_services = (! command -v systemctl >/dev/null || systemctl disable --now $(1) 2>/dev/null || true)

## run: install, generate, seed, start Envoy and the services (Ctrl-C stops them);
##      REPLICAS="router=2 llm_gateway=3" runs several processes of a service
run: $(VENV)/.installed $(GEN)/.stamp seed redis-server
	$(PY) -m deploy.local_mesh --topology deploy/topology.yaml --data-dir $(DATA_DIR) --replicas "$(REPLICAS)"

## test: install, generate, lint (buf + ruff) and run every test (the chaos tests need root)
test: lint $(GEN)/.stamp redis-server promtool postgresql browser netfilter
	$(PY) -m pytest

## lint: buf lint on the contracts and buf breaking against the previous release's, ruff on the code,
##       mypy (strict) on the typed packages
lint: $(VENV)/.installed node_modules/.installed $(GEN)/.stamp
	node_modules/.bin/buf lint
	$(PY) -m deploy.contract_baseline
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## protos: generate Python messages, stubs and .pyi types into gen/python
protos: $(GEN)/.stamp

$(GEN)/.stamp: $(PROTOS) $(VENV)/.installed
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) $(PROTOS)
	touch $(GEN)/tilores_x/__init__.py $(GEN)/tilores_x/v1/__init__.py $@

## seed: build the embedded Tilores store with sample customers (once)
seed: $(DATA_DIR)/tilores.db

$(DATA_DIR)/tilores.db: $(VENV)/.installed $(GEN)/.stamp
	mkdir -p $(DATA_DIR)
	$(PY) -m services.tilores_data.seed --db $@ --customers $(CUSTOMERS)

## customers: five sample customers to ask about (name, e-mail, client id, phone, contact id)
customers: seed
	@$(PY) -m services.tilores_data.seed --db $(DATA_DIR)/tilores.db --list 5

## bench: figures for the mesh's added latency and CPU against its floor chain, tilores_data at 100,000 customers, the router's lookups, tracing and identities per hop (prints, never fails on speed)
bench: $(VENV)/.installed $(GEN)/.stamp
	$(PY) -m bench.chat_latency
	$(PY) -m bench.long_streams
	$(PY) -m bench.provider_paths
	$(PY) -m bench.tilores_data
	$(PY) -m bench.router_paths
	$(PY) -m bench.rpc_spans
	$(PY) -m bench.identity_cost

## eval: an evaluation run of the offline model (MODELS="offline,gpt-4o-mini" for others) on 320 questions over
##       7 spectrums; prints the matrix, writes build/eval/<run>.json and .html, and the scorer's planted-error figures
##       on offline answers and on paraphrased ones (prose, in phrasings held out from its tuning)
MODELS ?= offline
eval: $(VENV)/.installed $(GEN)/.stamp redis-server
	$(PY) -m bench.planted_errors
	$(PY) -m bench.evaluate --models "$(MODELS)"

## soak: 1,000 slow streams at once through Envoy and every hop, each must finish; then 4 MiB worst inputs beside
##       a neighbour's streams, and the optimizer and the router SIGKILLed under load with no outcome lost
soak: $(VENV)/.installed $(GEN)/.stamp
	$(PY) -m bench.soak --streams 1000 --token-delay-ms 60 --faults

## chaos: the mesh on simulated hosts (a network namespace per pod), every fault of tests/chaos/faults.py under a
##        steady load (a host vanishing, partitions, a slow and a lossy link, a host SIGKILLed, Redis's and
##        PostgreSQL's hosts gone), one table; fails when a bound of docs/operations.md is broken (needs root)
chaos: $(VENV)/.installed $(GEN)/.stamp redis-server postgresql netfilter
	$(PY) -m tests.chaos

envoy-config: $(VENV)/.installed
	$(PY) -m deploy.envoy_config --topology deploy/topology.yaml --out build/envoy.yaml

## k8s: regenerate deploy/k8s from the topology and the Grafana dashboards, and validate the manifests (also part of `make test`)
k8s: $(VENV)/.installed
	$(PY) -m deploy.kubernetes --topology deploy/topology.yaml --out deploy/k8s
	$(PY) -m deploy.dashboards --out deploy/monitoring/dashboards
	$(VENV)/bin/kubernetes-validate --strict --quiet -k 1.29 -k 1.33 deploy/k8s/*.yaml

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || \
		(apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV))
	@echo "installing the pinned Python packages into $(VENV) (a few minutes on a new machine) ..."
	@# One line per package as it comes, and a line every 10 s while pip is quiet (unpacking,
	@# installing); pip's own errors go to stderr as they are.
	@set -o pipefail; PYTHONUNBUFFERED=1 $(PY) -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.txt \
		| $(PY) -m deploy.install_progress
	@# The repository and the generated code are importable from the venv.
	echo "$(CURDIR)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tilores_x_mesh.pth
	echo "$(CURDIR)/$(GEN)" >> $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tilores_x_mesh.pth
	touch $@

## promtool: checks and unit-tests the alert rules in make test; from Debian's prometheus package when missing
promtool:
	@command -v promtool >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus && \
		 $(call stop_services,prometheus prometheus-node-exporter))

## postgresql: the optimizer's shared store, started by the tests on a free port; from Debian when missing (needs root)
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql && \
		 $(call stop_services,postgresql))

## console-assets: copy the console's plotting (uPlot) and diff (jsdiff) libraries from their npm packages
console-assets: node_modules/.installed
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css gateway/console/vendor/
	cp node_modules/diff/dist/diff.min.js gateway/console/vendor/

## screenshots: the console's pages as docs/operations.md shows them (docs/console/*.png), taken in Chromium
screenshots: $(VENV)/.installed $(GEN)/.stamp redis-server browser
	CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest -q tests/e2e/test_console_e2e.py -k every_page

## browser: Debian's Chromium and its driver, for the console's browser tests in make test (needs root)
browser:
	@command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver)

## netfilter: nft and iptables for the chaos tests' faults; from Debian when missing (needs root)
netfilter:
	@(command -v nft && command -v iptables-restore) >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends nftables iptables)

## redis-server: the cache's second tier; from Debian when missing (needs root)
redis-server:
	@command -v redis-server >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server)

node_modules/.installed: package.json package-lock.json
	@# buf ships through npm; a machine without Node.js gets it from Debian (needs root).
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm)
	@echo "installing buf and the openai Node SDK with npm ..."
	npm ci --silent --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) node_modules $(GEN) build .pytest_cache clients/node/node_modules clients/node/src/gen clients/python/build
