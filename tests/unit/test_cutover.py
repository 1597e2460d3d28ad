"""The double run's logic without services: delta and lag, window, lock, the verify's carry,
data parity, custody."""

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
from citadelle.migrate.cutover import (
    check_window,
    load_verified,
    save_verified,
    unchanged_since_verified,
)
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


def verified_pair(tmp_path: Path) -> WorkspaceState:
    """A workspace whose last verify read c/same, c/src-changed, c/dst-changed and found them
    equal, and found c/bad different at the destination."""
    state = WorkspaceState.load(tmp_path, "a")
    src = manifest.build("dev", "source", "https://src", ["c"], [
        Entry(f"c/{n}", 10, f"sha-{n}", etag=f"etag-{n}") for n in
        ("same", "src-changed", "dst-changed", "bad")])
    dst = manifest.build("dev", "destination", "https://dst", ["d"], [
        Entry(f"c/{n}", 10, "other" if n == "bad" else f"sha-{n}", md5=f"md5-{n}") for n in
        ("same", "src-changed", "dst-changed", "bad")])
    result = manifest.compare(manifest.entries(src), manifest.entries(dst))
    assert result.hash_mismatch == ["c/bad"]
    save_verified(state, result, src, dst, carried={}, digest="d1")
    return state


def test_only_what_changed_at_neither_end_is_carried(tmp_path: Path) -> None:
    state = verified_pair(tmp_path)
    proven = load_verified(state)
    # A difference is never recorded as proven: the next verify reads it again.
    assert sorted(proven) == ["c/dst-changed", "c/same", "c/src-changed"]
    synced = {f"c/{n}": listed(f"etag-{n}", 10, 60) for n in ("same", "dst-changed", "bad")}
    synced["c/src-changed"] = listed("etag-new", 10, 5)  # written again at the source
    synced["c/new"] = listed("etag-x", 10, 5)
    listing = [{"name": f"c/{n}", "hash": f"md5-{n}", "bytes": 10, "last_modified": "t"}
               for n in ("same", "src-changed", "bad", "new")]
    listing.append({"name": "c/dst-changed", "hash": "md5-tampered", "bytes": 10,
                    "last_modified": "t"})
    carried = unchanged_since_verified(proven, synced, listing)
    assert sorted(carried) == ["c/same"]
    assert carried["c/same"].source.sha256 == carried["c/same"].destination.sha256 == "sha-same"
    assert carried["c/same"].evidence == "d1"
    # Same MD5 but another size (a truncated object) is read again too.
    listing[0]["bytes"] = 9
    assert unchanged_since_verified(proven, synced, listing) == {}


def test_a_carried_object_keeps_the_verify_that_read_it(tmp_path: Path) -> None:
    state = verified_pair(tmp_path)
    synced = {"c/same": listed("etag-same", 10, 60)}
    listing = [{"name": "c/same", "hash": "md5-same", "bytes": 10, "last_modified": "t"}]
    carried = unchanged_since_verified(load_verified(state), synced, listing)
    src = manifest.build("dev", "source", "https://src", ["c"], [carried["c/same"].source])
    dst = manifest.build("dev", "destination", "https://dst", ["d"],
                         [carried["c/same"].destination])
    save_verified(state, manifest.compare(manifest.entries(src), manifest.entries(dst)),
                  src, dst, carried=carried, digest="d2")
    assert load_verified(state)["c/same"]["evidence"] == "d1"


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
    state.data["history"][0]["by"] = "sync-robot@gw1"
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
    assert cells["who"] == ("sync: sync-robot@gw1; cutover freeze: ops@host; "
                            "cutover switch: ops@host")
    assert cells["retired"] == "-"


class FakeSource:
    """The source side of a rollback: records deletions."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def get_blob_client(self, container: str, name: str) -> Any:
        outer = self

        class Blob:
            def delete_blob(self) -> None:
                outer.deleted.append(f"{container}/{name}")

        return Blob()


def test_rollback_copies_back_until_the_eu_side_stops_changing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from citadelle.migrate import cutover

    listings = [  # an EU writer adds c/late while the first pass copies
        {"c/a": "md5-a", "c/b": "md5-b2", "c/new": "md5-n"},
        {"c/a": "md5-a", "c/b": "md5-b2", "c/new": "md5-n", "c/late": "md5-l"},
        {"c/a": "md5-a", "c/b": "md5-b2", "c/new": "md5-n", "c/late": "md5-l"},
    ]
    copies: list[list[str]] = []
    source = FakeSource()
    monkeypatch.setattr(cutover, "destination_listing", lambda ws: [
        {"name": k, "hash": v} for k, v in listings.pop(0).items()])
    monkeypatch.setattr(cutover, "_copy_back",
                        lambda ws, keys, folder: copies.append(keys) or len(keys))
    monkeypatch.setattr(cutover.inventory, "source_client", lambda access: source)
    ws = cast(Any, type("Ws", (), {"id": "a", "ctx": type("Ctx", (), {"source": None})()})())
    final = {"c/a": "md5-a", "c/b": "md5-b", "c/gone": "md5-g"}
    written, deleted, copied, passes = cutover._bring_back(ws, final, tmp_path)
    assert copies == [["c/b", "c/new"], ["c/late"]]
    assert (written, deleted, copied, passes) == (["c/b", "c/late", "c/new"], ["c/gone"], 3, 3)
    assert source.deleted == ["c/gone"]


def test_rollback_refuses_while_the_eu_side_keeps_changing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from citadelle.migrate import cutover

    counter = iter(range(100))
    monkeypatch.setattr(cutover, "destination_listing", lambda ws: [
        {"name": "c/busy", "hash": f"md5-{next(counter)}"}])
    monkeypatch.setattr(cutover, "_copy_back", lambda ws, keys, folder: len(keys))
    monkeypatch.setattr(cutover.inventory, "source_client", lambda access: FakeSource())
    ws = cast(Any, type("Ws", (), {"id": "a", "ctx": type("Ctx", (), {"source": None})()})())
    with pytest.raises(CitadelleError, match="still changes after 5 copy-back passes"):
        cutover._bring_back(ws, {}, tmp_path)


def test_a_red_verify_blocks_the_cutover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from citadelle.migrate import cutover

    class Store:
        def head(self, url: str, raise_exc: bool) -> Any:
            return type("Head", (), {"status_code": 204, "headers": {}})()

    monkeypatch.setattr(cutover.inventory, "destination_session",
                        lambda destination: (Store(), "https://swift/v1/c"))
    ctx = type("Ctx", (), {"environment": "dev", "destination": type(
        "Dest", (), {"container": "c", "storage_url": "https://swift/v1"})()})()
    ws = Workspace("a", move(NOW - datetime.timedelta(hours=1), NOW + datetime.timedelta(days=1)),
                   cast(Any, ctx))
    state = WorkspaceState.load(tmp_path, "a")
    state.data["last_verify"] = {"ok": False, "at": "2026-12-05T08:00:00+00:00"}
    state.save()
    before = (state.folder / "state.json").read_bytes()
    with pytest.raises(CitadelleError, match="no green verify"):
        cutover.preflight(ws, state)
    assert (state.folder / "state.json").read_bytes() == before
