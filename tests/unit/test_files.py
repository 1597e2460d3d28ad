"""The one writer of the project's files and private directories: never wider than asked."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from citadelle.files import private_dir, write_file

pytestmark = pytest.mark.unit


@pytest.fixture
def open_umask() -> Iterator[None]:
    # The widest umask: any mode the files get is the one the code asked for.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_directory_is_created_and_tightened_to_its_owner(tmp_path: Path,
                                                                   open_umask: None) -> None:
    created = private_dir(tmp_path / "lab" / "secrets")
    assert (created, _mode(created)) == (tmp_path / "lab" / "secrets", 0o700)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    assert _mode(private_dir(loose)) == 0o700


def test_a_file_is_replaced_whole_with_the_mode_asked(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("old")
    path.chmod(0o644)
    write_file(path, "new", 0o600)
    assert (path.read_text(), _mode(path)) == ("new", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.json"]
