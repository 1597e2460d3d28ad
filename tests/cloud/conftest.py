"""The loopback OpenStack for the cloud tests: up once per session, always torn down.

A missing installation is a failure, never a skip: scripts/install runs scripts/install-cloud-lab.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from citadelle.lab.cloud import lab
from citadelle.lab.cloud.provision import connect
from citadelle.lab.cloud.seed import Seeded, seed
from citadelle.paths import REPO_ROOT
from citadelle.plan.plan import plan_environment

# Figures of the session (the budgets are in docs/cloud-audit.md): printed at the end and written
# to artifacts/cloud-timings.json. Timing is measured, not asserted: the machine is shared.
TIMINGS: dict[str, float] = {}
DRIFT_ENV = "dev"
DRIFT_PROJECT = "citadelle-dev-drift"
DRIFT_CLOUD = "citadelle-dev-drift"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("cloud lab figures")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{name}: {seconds:.1f} s")
    out = REPO_ROOT / "artifacts" / "cloud-timings.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(TIMINGS, indent=2) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cloud/" in str(item.fspath) and not item.get_closest_marker("unit"):
            item.add_marker(pytest.mark.cloud)


@dataclass(frozen=True)
class CloudLab:
    up_seconds: float
    cold: bool
    clouds_yaml: Path


@pytest.fixture(scope="session")
def cloud_lab() -> Iterator[CloudLab]:
    lab.check_installed()
    if lab.running():
        lab.down()  # a previous session killed before its teardown
    started = time.monotonic()
    try:
        result = lab.up()
        seconds = time.monotonic() - started
        TIMINGS[f"lab up ({'cold' if result.cold else 'from snapshot'})"] = seconds
        install = lab.LAB / "install-timing.json"
        if result.cold and install.is_file():
            # The budget: the fixture up cold, scripts/install-cloud-lab's run included (cold
            # only when that run had Debian packages to install, as on a fresh machine).
            record = json.loads(install.read_text())
            installed = float(record["seconds"])
            TIMINGS["scripts/install-cloud-lab (last run)"] = installed
            if record.get("apt_packages_installed"):
                TIMINGS["fixture up cold, installation included"] = installed + seconds
        yield CloudLab(seconds, result.cold, lab.CLOUDS_YAML)
    finally:
        lab.down()


@pytest.fixture
def admin(cloud_lab: CloudLab) -> Any:
    return connect(lab.ADMIN_CLOUD_NAME, str(cloud_lab.clouds_yaml))


@pytest.fixture
def member(cloud_lab: CloudLab) -> Any:
    return connect(lab.CLOUD_NAME, str(cloud_lab.clouds_yaml))


@dataclass(frozen=True)
class DriftProject:
    """The dev plan deployed in its own project, audited by a member of that project."""

    clouds_yaml: Path
    cloud: str
    project_id: str
    seeded: Seeded


@pytest.fixture(scope="session")
def drift_project(cloud_lab: CloudLab, tmp_path_factory: pytest.TempPathFactory) -> DriftProject:
    admin = connect(lab.ADMIN_CLOUD_NAME, str(cloud_lab.clouds_yaml))
    identity = admin.identity
    project = identity.create_project(name=DRIFT_PROJECT, domain_id="default")
    password = secrets.token_urlsafe(24)
    user = identity.create_user(name=f"{DRIFT_PROJECT}-member", password=password,
                                default_project_id=project.id)  # fmt: skip
    member_role = identity.find_role("member")
    identity.assign_project_role_to_user(project, user, member_role)
    clouds = json.loads(cloud_lab.clouds_yaml.read_text())
    entry = json.loads(json.dumps(clouds["clouds"][lab.CLOUD_NAME]))
    entry["auth"].update(username=user.name, password=password, project_name=DRIFT_PROJECT)
    clouds["clouds"][DRIFT_CLOUD] = entry
    path = tmp_path_factory.mktemp("drift") / "clouds.yaml"
    path.write_text(json.dumps(clouds))
    path.chmod(0o600)
    member = connect(DRIFT_CLOUD, str(path))
    started = time.monotonic()
    seeded = seed(admin, member, plan_environment(DRIFT_ENV), project.id)
    TIMINGS[f"seed {DRIFT_ENV} plan"] = time.monotonic() - started
    return DriftProject(path, DRIFT_CLOUD, project.id, seeded)


@pytest.fixture
def drift_member(drift_project: DriftProject) -> Any:
    return connect(drift_project.cloud, str(drift_project.clouds_yaml))


@pytest.fixture
def timings() -> dict[str, float]:
    return TIMINGS


@pytest.fixture
def cli_env(cloud_lab: CloudLab) -> dict[str, str]:
    return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(cloud_lab.clouds_yaml)}
