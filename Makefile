# Every command the README uses. `make test` is what CI runs (via .ci/run).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-fast test-cluster test-node image lint bench docs trace-picture kind-e2e install clean

install:  ## create .venv and install jobq with its dev tools
	bash hack/bootstrap.sh

dev: install  ## run the whole system locally (embedded Valkey unless REDIS_URL is set)
	$(BIN)/jobq dev

test:  ## everything: lint, suite on Valkey and on Redis 7, cluster tier, real-node tier
	bash hack/test.sh

test-fast: install  ## the suite on the embedded Valkey only, no cluster tier
	$(BIN)/pytest tests --ignore=tests/cluster --ignore=tests/node -q -n $${JOBQ_TEST_PROCESSES:-4}

test-cluster: install  ## the Kubernetes tier only
	$(BIN)/pytest tests/cluster -q

test-node: install  ## the real-node tier only: image, node, chart on real pods (root, Debian)
	$(BIN)/pytest tests/node -q

lint: install
	$(BIN)/ruff check .
	bash hack/mypy.sh

bench: install  ## throughput and latency figures (printed, not asserted)
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/logline.py
	$(BIN)/python bench/sidebyside.py --quick
	$(BIN)/python bench/clientcall.py

image:  ## build the image from the Dockerfile with buildah, no Docker engine (root, Debian)
	bash hack/image.sh

docs: install  ## the docs site into site/ (mkdocs-material, strict; HTTP and Python references generated)
	bash hack/docs.sh

trace-picture: install  ## docs/trace-in-jaeger.png from a real run in Jaeger's UI (builds Jaeger and its UI once, into ~/.cache/jobq)
	bash hack/trace-picture.sh

kind-e2e:  ## end to end on kind (needs Docker and kind)
	bash hack/kind-e2e.sh

clean:
	rm -rf $(VENV) build site *.egg-info .jobq .pytest_cache .mypy_cache .ruff_cache
