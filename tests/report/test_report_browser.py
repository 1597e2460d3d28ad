"""The evidence report as an auditor sees it: rendered by headless Chromium (Debian's
`chromium`, installed by scripts/install), totals read back from the DOM, screenshot kept."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from citadelle.evidence.report import STATUSES, build_report, save_report
from citadelle.paths import REPO_ROOT

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_ROOT / "artifacts"
KEYS = ("requirements", "automated", *STATUSES)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("chromium")
    assert executable, "chromium is missing: scripts/install installs Debian's chromium package"
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([executable, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


class TotalsParser(HTMLParser):
    """Reads the totals tables: table id -> group -> key -> number."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, dict[str, int]]] = {}
        self.scripts = 0
        self._table: str | None = None
        self._group: str | None = None
        self._key: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table" and (attributes.get("id") or "").startswith("totals-"):
            self._table = str(attributes["id"])
            self.tables[self._table] = {}
        elif tag == "tr" and self._table and attributes.get("data-group"):
            self._group = str(attributes["data-group"])
            self.tables[self._table][self._group] = {}
        elif tag == "td" and self._group and attributes.get("data-key"):
            self._key = str(attributes["data-key"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = self._group = None
        elif tag == "td":
            self._key = None

    def handle_data(self, data: str) -> None:
        if self._table and self._group and self._key and data.strip():
            self.tables[self._table][self._group][self._key] = int(data)


@pytest.fixture(scope="module")
def rendered(evidence_run: Path, catalogue: list[dict[str, Any]],
             tmp_path_factory: pytest.TempPathFactory):
    report = build_report("dev", evidence_run, catalogue=catalogue)
    html_path, _ = save_report(report, tmp_path_factory.mktemp("report"))
    return report, html_path


def test_totals_in_the_rendered_dom(rendered, tmp_path: Path):
    report, html_path = rendered
    proc = chromium(tmp_path, "--dump-dom", html_path.as_uri())
    assert proc.returncode == 0, proc.stderr[-500:]
    parser = TotalsParser()
    parser.feed(proc.stdout)
    assert parser.scripts == 0
    for kind, rows in (("snc", report.snc), ("bp028", report.bp028)):
        expected = {group: {k: counts[k] for k in KEYS}
                    for group, counts in report.totals(rows).items()}
        assert parser.tables[f"totals-{kind}"] == expected


def test_self_contained_without_script(rendered):
    _, html_path = rendered
    text = html_path.read_text()
    assert "<style>" in text
    for forbidden in ("<script", "<link", " src=", " href=", "@import", "url(", "<iframe"):
        assert forbidden not in text


def screenshot(html_path: Path, tmp_path: Path, name: str, height: int) -> bytes:
    """A PNG of the page, ``height`` pixels tall, kept in artifacts/ for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    proc = chromium(tmp_path, f"--screenshot={shot}", f"--window-size=1400,{height}",
                    html_path.as_uri())
    assert proc.returncode == 0, proc.stderr[-500:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_screenshot_is_kept_as_an_artefact(rendered, tmp_path: Path):
    _, html_path = rendered
    data = screenshot(html_path, tmp_path, "report-dev.png", 2400)
    assert len(data) > 20_000  # a rendered page, not a blank canvas


class RowsParser(HTMLParser):
    """Reads the requirement rows: (kind-id) -> (data-status, data-layers, status cell class)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, tuple[str, str, str]] = {}
        self._row: tuple[str, str, str] | None = None
        self._id = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("data-status"):
            self._id = str(attributes.get("id"))
            self._row = (str(attributes["data-status"]), str(attributes.get("data-layers")), "")
        elif tag == "td" and self._row and "status" in (attributes.get("class") or ""):
            self.rows[self._id] = (*self._row[:2], str(attributes["class"]))
            self._row = None


def test_rows_carry_status_colour_and_evidence_layers(rendered, tmp_path: Path):
    report, html_path = rendered
    proc = chromium(tmp_path, "--dump-dom", html_path.as_uri())
    assert proc.returncode == 0, proc.stderr[-500:]
    parser = RowsParser()
    parser.feed(proc.stdout)
    for kind, rows in (("snc", report.snc), ("bp028", report.bp028)):
        for row in rows:
            slug = row.evidence.status.replace(" ", "-")
            assert parser.rows[f"{kind}-{row.id}"] == (
                slug, " ".join(row.evidence.layers), f"status s-{slug}")
    text = html_path.read_text()
    # Every status has its colour in the stylesheet, so the screenshot tells them apart.
    for status in STATUSES:
        assert f".s-{status.replace(' ', '-')}{{color:" in text


def test_screenshot_of_the_requirement_rows(rendered, tmp_path: Path):
    _, html_path = rendered
    # Tall enough to reach past the totals into the requirement rows and their colours.
    data = screenshot(html_path, tmp_path, "report-dev-requirements.png", 6000)
    assert len(data) > 100_000
