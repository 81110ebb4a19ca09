# hostdev — all set-up happens here; `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench test-realkernel protos check-protos clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { \
	  rm -rf $(VENV); \
	  echo "python3 -m venv failed: installing Debian's python3-venv (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m hostdev.demo

test: $(STAMP) lint typecheck check-protos unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Regenerate the committed gRPC modules from src/hostdev/kubelet/api/protos/*.proto.
protos: $(STAMP)
	$(BIN)/python -m hostdev.kubelet.protogen

# Fails when the committed generated code differs from a fresh generation.
check-protos: $(STAMP)
	$(BIN)/python -m hostdev.kubelet.protogen --check

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
