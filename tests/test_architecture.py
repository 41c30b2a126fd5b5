"""The package's folders follow the flow: each stage imports only the stages before it.

language → compile → engines → runs → reading → checks → downstream; the front doors
(``project``, ``cli``, ``ui``) may import any of them, and nothing on the runtime path
imports the reference evaluator, which exists to check the engines in the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import segql

PACKAGE = Path(segql.__file__).parent
FLOW = ["language", "compile", "engines", "runs", "reading", "checks", "downstream"]
# Stages may read what a project holds: its loaded, checked definitions (``segql.project``).
SHARED = {"errors", "timeutil", "config", "config_schema", "output", "stream", "project"}


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports() -> list[tuple[str, str, str]]:
    """(importing module's file, its stage, the imported module) for every segql import."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = (
                    [f"segql.{alias.name}" for alias in node.names]
                    if node.module == "segql"
                    else [node.module]
                )
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("segql."):
                    found.append((str(path.relative_to(PACKAGE.parent)), stage_of(module), target))
    return found


def test_each_stage_imports_only_the_stages_before_it() -> None:
    backwards = [
        f"{path} ({stage}) imports {target}"
        for path, stage, target in imports()
        if stage in FLOW
        and stage_of(target) in FLOW
        and FLOW.index(stage_of(target)) > FLOW.index(stage)
    ]
    assert backwards == []


def test_every_stage_folder_exists_and_says_what_it_holds() -> None:
    for stage in [*FLOW, "starters", "ui"]:
        init = PACKAGE / stage / "__init__.py"
        assert init.is_file(), stage
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), stage


def test_the_top_level_holds_only_the_front_doors_and_shared_parts() -> None:
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top <= SHARED | {"cli", "reference", "warehouse"}


def test_nothing_on_the_runtime_path_imports_the_reference_evaluator() -> None:
    assert [path for path, _, target in imports() if target == "segql.reference"] == []
