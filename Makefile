# hostdev — all set-up happens here; `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench test-realkernel bench-realkernel protos check-protos clean

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv (needs root)"; \
	  apt-get install -y python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m hostdev.demo

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# Second test command: tests/realkernel/ in a QEMU guest running Debian's kernel (root; ~3-5 min).
test-realkernel: $(STAMP)
	tests/realkernel/harness/run-in-guest -- $(REALKERNEL_PYTEST_ARGS)

# Guest-side figures for docs/benchmarks.md (root; compares with Debian's dpdk-devbind.py).
bench-realkernel: $(STAMP)
	tests/realkernel/harness/run-in-guest --figures

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
