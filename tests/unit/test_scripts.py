"""The benchmark scripts' embedded Python type-checks against the package as it is today: a
refactor that changes a signature they call breaks this test, not the next benchmark run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

from citadelle.paths import REPO_ROOT

pytestmark = pytest.mark.unit

EMBEDDED = re.compile(r"<<'PY'\n(.*?)\nPY\n", re.DOTALL)
SCRIPTS = sorted(p for p in (REPO_ROOT / "scripts").iterdir()
                 if p.is_file() and "<<'PY'" in p.read_text(encoding="utf-8"))


def test_there_are_scripts_to_check() -> None:
    assert {"bench-cutover", "bench-migrate"} <= {p.name for p in SCRIPTS}


def test_embedded_python_type_checks(tmp_path: Path) -> None:
    extracted = []
    for script in SCRIPTS:
        [body] = EMBEDDED.findall(script.read_text(encoding="utf-8"))
        extracted.append(tmp_path / f"{script.name.replace('-', '_')}.py")
        extracted[-1].write_text(body + "\n", encoding="utf-8")
    # One mypy run for all of them (each is its own module): the package is read once.
    out, err, status = api.run([*map(str, extracted), "--config-file",
                                str(REPO_ROOT / "pyproject.toml"), "--no-incremental",
                                "--allow-untyped-defs", "--allow-incomplete-defs",
                                "--follow-imports", "silent"])
    assert status == 0, out + err
