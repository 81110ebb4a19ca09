"""Generates the committed gRPC Python modules in hostdev.kubelet.api from the .proto files.

`python -m hostdev.kubelet.protogen` rewrites them (`make protos`); `--check` regenerates into
a temporary directory and fails when the committed files differ (part of `make test`), so a
changed .proto can never ship with stale Python code. Needs grpcio-tools (a dev dependency).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

API_DIR = Path(__file__).resolve().parent / "api"
PROTO_DIR = API_DIR / "protos"
API_PACKAGE = "hostdev.kubelet.api"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    """The .proto sources, sorted so generation is deterministic."""
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every proto into out_dir and make the imports package-absolute."""
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = sorted(p for p in out_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    for path in written:
        path.write_text(_absolute_imports(path.read_text()))
    return written


def _absolute_imports(source: str) -> str:
    """protoc emits `import x_pb2 as ...`; the package needs `from hostdev... import x_pb2`."""
    return re.sub(
        r"^import (\w+_pb2) as (\w+)$",
        rf"from {API_PACKAGE} import \1 as \2",
        source,
        flags=re.MULTILINE,
    )


def committed_files() -> list[Path]:
    """The generated modules currently in the source tree."""
    return sorted(p for p in API_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def check() -> int:
    """Return 0 when the committed modules equal a fresh generation, 1 (with a diff) if not."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in generate(Path(tmp))}
    current = {p.name: p.read_text() for p in committed_files()}
    names = fresh.keys() | current.keys()
    stale = sorted(name for name in names if fresh.get(name) != current.get(name))
    for name in stale:
        diff = difflib.unified_diff(
            current.get(name, "").splitlines(keepends=True),
            fresh.get(name, "").splitlines(keepends=True),
            f"committed/{name}",
            f"generated/{name}",
        )
        sys.stderr.writelines(diff)
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run `make protos`", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Regenerate in place, or with --check only compare."""
    parser = argparse.ArgumentParser(prog="python -m hostdev.kubelet.protogen")
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    for path in committed_files():
        path.unlink()
    for path in generate(API_DIR):
        print(f"wrote {path.relative_to(API_DIR.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
