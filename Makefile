# hostdev — all set-up happens here; `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench test-realkernel test-realkernel-iommufd bench-realkernel protos check-protos clean

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

# Second test command: tests/realkernel/ in a QEMU guest running Debian's kernel (root; ~3-5 min).
test-realkernel: $(STAMP)
	tests/realkernel/harness/run-in-guest -- $(REALKERNEL_PYTEST_ARGS)

# The same suite on Debian 13's kernel built here with iommufd and VFIO device cdevs, which
# Debian's own builds lack (root; the first run builds the kernel: about 37 min on 2 vCPUs).
IOMMUFD_CACHE ?= /var/cache/hostdev-realkernel/iommufd
test-realkernel-iommufd: $(STAMP)
	HOSTDEV_REALKERNEL_CACHE=$(IOMMUFD_CACHE) tests/realkernel/harness/build-iommufd-kernel
	HOSTDEV_REALKERNEL_CACHE=$(IOMMUFD_CACHE) tests/realkernel/harness/run-in-guest -- $(REALKERNEL_PYTEST_ARGS)

# Guest-side figures for docs/benchmarks.md (root; compares with Debian's dpdk-devbind.py).
bench-realkernel: $(STAMP)
	tests/realkernel/harness/run-in-guest --figures

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
