"""The image definition, read instruction by instruction (no container engine runs here)."""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib

from deploytools import REPO

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return result


def stages() -> list[list[Instruction]]:
    """Instructions grouped by FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps a path out of the build context."""
    patterns = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in patterns if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_both_stages_use_a_small_python_311_base() -> None:
    bases = [stage[0][1].split()[0] for stage in stages()]
    assert len(bases) == 2
    assert all(base.startswith("python:3.11-slim") for base in bases)


def test_runtime_installs_pciutils_pci_ids_and_kmod_and_cleans_apt_lists() -> None:
    runs = " ".join(arguments for keyword, arguments in stages()[-1] if keyword == "RUN")
    words = shlex.split(runs.replace("&&", " "))
    assert {"pciutils", "pci.ids", "kmod"} <= set(words)
    assert "--no-install-recommends" in words
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_runtime_installs_the_wheel_built_from_this_repository() -> None:
    build, runtime = stages()
    assert any(k == "RUN" and "pip wheel" in a for k, a in build)
    assert ("COPY", "--from=build /wheels /wheels") in runtime
    assert any(k == "RUN" and "pip install --no-cache-dir /wheels/*.whl" in a for k, a in runtime)


def test_entrypoint_is_hostdev_in_exec_form() -> None:
    final = dict(stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["hostdev"]
    assert json.loads(final["CMD"]) == ["serve"]
    assert final["USER"] == "0:0"


def test_every_copied_source_exists_and_is_not_ignored() -> None:
    sources = [
        source
        for keyword, arguments in stages()[0]
        if keyword == "COPY"
        for source in arguments.split()[:-1]
    ]
    readme = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["readme"]
    assert {"pyproject.toml", readme, "src"} <= set(sources)
    for source in sources:
        assert not ignored(source), source
    for source in sources:
        assert (REPO / source).exists(), source


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    for path in [".git", ".venv", "tests", "src/hostdev/__pycache__"]:
        assert ignored(path), path
    assert not ignored("src/hostdev/cli/main.py")
