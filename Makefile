# Everything runs in the project's own virtual environment, created on first use from the pinned lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-sdk-config.txt pyproject.toml | cksum | cut -d' ' -f1)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

IMAGES := $(VENV)/image-envs/.built-$(shell cat src/sfn_mlops_local/local/images/*.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck validate build unit e2e bench clean reset stop lock chromium java report-screenshot

# The last step fetches SageMaker's image URI table (a wheel read, not installed, by tests/unit/test_image_uris.py).
$(STAMP): requirements.lock requirements-sdk-config.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	$(BIN)/python -m pip download --quiet --no-deps --require-hashes --requirement requirements-sdk-config.txt --dest $(VENV)/image-uri-config
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

## images: build each SageMaker image's local environment once (its package list; about 1 GB, 1-3 min cold)
$(IMAGES): $(STAMP) src/sfn_mlops_local/local/images/*.txt
	$(BIN)/python -m sfn_mlops_local.local.image_environments
	@rm -f $(VENV)/image-envs/.built-* && touch $(IMAGES)

## run: run the abalone pipeline end to end on the embedded local runtime
run: $(STAMP) $(IMAGES) java
	$(BIN)/mlops run abalone

## test: lint, type-check, validate the template and state machines, run every test (a module per worker, one per core)
test: $(STAMP) $(IMAGES) java chromium lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadfile

## unit: the fast tier, under a minute on 2 cores: unit tests without the tooling (sam, linters), the Spark JVM or the job containers' processes (`make test` runs them all)
unit: $(STAMP) $(IMAGES) java
	$(BIN)/python -m pytest tests/unit -q -m "not tooling and not spark and not container" -n 2 --dist loadfile

## e2e: whole pipelines on the local service
e2e: $(STAMP) $(IMAGES) java
	$(BIN)/python -m pytest tests/e2e tests/statemachine -q

## java: Java 17 for Spark's local mode (churn's PySpark preprocess), from the system packages (as root; nothing to do if present)
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless; }

## chromium: Debian's Chromium, which the report's browser test drives (installs as root; nothing to do if present)
chromium:
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

## report-screenshot: docs/report.png (the README's picture) from the page the report's browser test opens
report-screenshot: $(STAMP) chromium
	MLOPS_REPORT_SCREENSHOT=docs/report.png $(BIN)/python -m pytest tests/e2e/test_report.py -q -k offline

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/shared/sfn_mlops src functions bench

## build: sam build without a container (what `sam deploy` ships)
build: $(STAMP)
	$(BIN)/sam build --region $(AWS_DEFAULT_REGION)

## bench: time the main job and the orchestration overhead per unit
bench: $(STAMP)
	$(BIN)/python bench/orchestration_overhead.py
	$(BIN)/python bench/rerun_cost.py
	$(BIN)/python bench/asl_shape.py
	$(BIN)/python bench/deployment.py
	$(BIN)/python bench/batch.py

reset: $(STAMP)
	$(BIN)/mlops local reset

stop: $(STAMP)
	$(BIN)/mlops local stop

## lock: re-resolve requirements.lock from pyproject.toml (needs the package registry)
lock:
	rm -rf /tmp/sfn-mlops-lock && $(PYTHON) -m venv /tmp/sfn-mlops-lock
	/tmp/sfn-mlops-lock/bin/pip install --quiet --upgrade pip==25.3
	/tmp/sfn-mlops-lock/bin/pip install --quiet ".[dev]"
	/tmp/sfn-mlops-lock/bin/pip freeze --exclude-editable | grep -v '^sfn-mlops' > requirements.lock

clean:
	test ! -x $(BIN)/mlops || $(BIN)/mlops local stop
	rm -rf $(VENV) .aws-sam .mlops-local
