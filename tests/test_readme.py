"""The README runs verbatim: every ```bash block, in order, in one shell, in a new folder.

A fresh machine has no segql yet, so the one adaptation is the install: the top line's
``python3 -m venv .venv && .venv/bin/pip install -e .`` is replaced by a ``.venv/bin``
that holds this environment's ``segql`` (the same code, installed already), and the
second top line (the test suite itself) is left out. Everything else runs as written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e . && "
TESTS = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest -q"
)


def readme_script() -> str:
    blocks = FENCE.findall(README.read_text(encoding="utf-8"))
    first = blocks[0].splitlines()
    assert first[0].startswith(INSTALL), "the README's first line no longer installs segql"
    assert first[1] == TESTS, "the README's second line no longer runs the tests"
    lines = [first[0].removeprefix(INSTALL), *first[2:]]
    return "\n".join(["\n".join(lines), *blocks[1:]])


def segql_executable() -> Path:
    found = Path(sys.executable).parent / "segql"
    if not found.exists():
        which = shutil.which("segql")
        assert which, "no segql executable beside this Python or on PATH"
        found = Path(which)
    return found


def test_readme_runs_top_to_bottom(tmp_path: Path) -> None:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "segql").symlink_to(segql_executable())
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = "set -euo pipefail\n" + readme_script()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"README failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (tmp_path / "demo" / "segql.toml").exists()
    assert "committed as #2 at as-of 2026-11-01" in done.stdout
    match = re.search(r"^(\d+) people match as of 2026-11-01 00:00:00$", done.stdout, re.M)
    assert match and int(match.group(1)) > 0, done.stdout[-2000:]
    assert "entered" in done.stdout and "period: after" in done.stdout
