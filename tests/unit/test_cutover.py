"""The double run's logic without services: delta and lag, window, lock, data parity, custody."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, cast

import pytest

from citadelle.cli import main
from citadelle.environment.settings import DataMigration
from citadelle.errors import CitadelleError
from citadelle.migrate import manifest
from citadelle.migrate.custody import custody
from citadelle.migrate.cutover import check_window
from citadelle.migrate.manifest import Entry
from citadelle.migrate.state import WorkspaceState, exclusive
from citadelle.migrate.sync import Workspace, delta

pytestmark = pytest.mark.unit

NOW = datetime.datetime.now(datetime.UTC)


def listed(etag: str, size: int, age_s: float) -> dict[str, Any]:
    return {"etag": etag, "size": size,
            "last_modified": (NOW - datetime.timedelta(seconds=age_s)).isoformat()}


def test_delta_finds_new_changed_and_deleted_and_the_lag() -> None:
    previous = {"c/a": listed("1", 10, 500), "c/b": listed("2", 20, 400),
                "c/gone": listed("3", 30, 300)}
    current = {"c/a": listed("1", 10, 500), "c/b": listed("2b", 25, 60),
               "c/new": listed("4", 40, 120)}
    change = delta(previous, current)
    assert (change.new, change.changed, change.deleted) == (["c/new"], ["c/b"], ["c/gone"])
    lag = change.lag(current, NOW)
    assert lag["objects"] == 3 and lag["bytes"] == 65
    assert lag["oldest_change_seconds"] == pytest.approx(120, abs=1)
    assert delta(current, current).lag(current, NOW) == {
        "objects": 0, "bytes": 0, "oldest_change_seconds": 0.0}


def move(start: datetime.datetime, end: datetime.datetime) -> DataMigration:
    return DataMigration.model_validate({
        "sourceContainers": ["ws-a"], "targetContainer": "ws-a",
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "rollbackRetentionDays": 30})


def test_window_in_the_past_or_not_yet_open_is_refused(tmp_path: Path) -> None:
    state = WorkspaceState.load(tmp_path, "a")
    hour = datetime.timedelta(hours=1)
    past = Workspace("a", move(NOW - 3 * hour, NOW - hour), cast(Any, None))
    with pytest.raises(CitadelleError, match="its migration window ended on"):
        check_window(past, state, cutover=False)
    later = Workspace("a", move(NOW + hour, NOW + 3 * hour), cast(Any, None))
    check_window(later, state, cutover=False)  # the double run may sync before the window
    with pytest.raises(CitadelleError, match="its migration window opens on"):
        check_window(later, state, cutover=True)
    state.data["phase"] = "switched"
    check_window(past, state, cutover=True)  # a switched workspace's window is history


def test_a_second_run_on_the_same_workspace_is_refused(tmp_path: Path) -> None:
    state = WorkspaceState.load(tmp_path, "a")
    refused = pytest.raises(CitadelleError, match=r"cutover \(pid \d+, .*\) is running on it; "
                                                  "rollback refused, nothing changed")
    with exclusive(state, "cutover"), refused, \
            exclusive(WorkspaceState.load(tmp_path, "a"), "rollback"):
        pass
    with exclusive(WorkspaceState.load(tmp_path, "a"), "rollback"):
        pass  # released with its holder


def write_manifest(path: Path, entries: list[Entry]) -> None:
    manifest.write(path, manifest.build("prod", "destination", "https://x", ["c"], entries))


def test_data_parity_names_every_difference(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    same = [Entry("c/a", 1, "aa"), Entry("c/b", 2, "bb")]
    write_manifest(tmp_path / "prod.json", same)
    write_manifest(tmp_path / "mirror.json", same)
    assert main(["parity", str(tmp_path / "prod.json"), str(tmp_path / "mirror.json"),
                 "--data"]) == 0
    assert "identical (key, size, SHA-256)" in capsys.readouterr().out
    write_manifest(tmp_path / "mirror.json", [Entry("c/a", 1, "a2"), Entry("c/x", 3, "xx")])
    assert main(["parity", str(tmp_path / "prod.json"), str(tmp_path / "mirror.json"),
                 "--data", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["differences"] == {"missing": ["c/b"], "extra": ["c/x"],
                                     "size_mismatch": [], "hash_mismatch": ["c/a"]}


def test_custody_tells_each_step_with_who_and_when(tmp_path: Path) -> None:
    run = tmp_path / "migrate" / "dev-lab"
    state = WorkspaceState.load(run, "demo")
    state.record("sync", NOW, objects=3)
    state.data.update(
        phase="switched", retention_until="2027-01-01T00:00:00+00:00",
        freeze={"started": "2026-12-04T18:00:00.000+00:00",
                "ended": "2026-12-04T18:00:20.000+00:00", "seconds": 20.0},
        steps={"freeze": {"by": "ops@host", "details": {"proof": {"ws-demo": {
            "status": 403, "error_code": "AuthenticationFailed",
            "refused_at": "2026-12-04T18:00:01+00:00"}}}},
            "switch": {"by": "ops@host", "finished": "2026-12-04T18:00:15+00:00",
                       "details": {"gate": {"exit_code": 0}}}})
    state.save()
    [row] = custody("dev", tmp_path)
    cells = dict(zip(("ws", "phase", "manifests", "verifies", "freeze", "switch", "retired",
                      "who"), row.cells, strict=True))
    assert cells["phase"] == "switched" and cells["verifies"] == "0 run(s)"
    assert "(20.0 s)" in cells["freeze"] and "refused 403 AuthenticationFailed" in cells["freeze"]
    assert cells["switch"].startswith("2026-12-04T18:00:15+00:00, gate exit 0")
    assert "ops@host" in cells["who"] and cells["retired"] == "-"
