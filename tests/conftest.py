"""Fixtures over the VM lab (docs/vm-lab.md): the same code as `citadelle lab`.

They live at the top of tests/ because the hardening tests (tests/vm) and the post-deploy
pipeline tests (tests/pipeline) share one converge: under TCG on two cores a converge costs
minutes, so it happens once per session.

- ``lab`` (session): a :class:`~citadelle.lab.Lab` sharing ``.lab/`` (image, golden snapshot,
  keys) with the CLI, but with its own run directory, so test clones never appear in the
  operator's ``.lab/inventory.yml``; the image and golden snapshot are ready when it yields.
- ``lab_clones`` (function) and ``module_lab_clones`` (module): factories;
  ``inv = lab_clones({"bastion": "bastion", "node1": "node"})`` restores clones and returns
  the :class:`~citadelle.lab.LabInventory` (``inv.inventory`` is an Ansible inventory with the
  bastion/gateway/node groups, ``inv.ssh_config`` an ssh_config for testinfra's ``ssh://``).
  Every clone a factory restored is killed by PID when its scope ends, pass or fail.
- ``log_collector`` (session): the lab's log collector (citadelle.lab.collector), started
  unless it runs already and then stopped at the end; the hardened clones upload to it.
- ``hardened_converge`` / ``hardened_lab`` (session): one clone per node role (bastion,
  gateway, node) converged with playbooks/site.yml through ansible-runner (which reboots them
  for the boot-time settings); ``hardened_lab`` is their LabInventory. The idempotency proof
  is the main command's own harden step on these clones (tests/pipeline/test_main_command.py):
  the same site.yml a second time, so the session pays for no third converge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from citadelle.deploy import harden
from citadelle.deploy.inventory import write_inventory
from citadelle.environment import Environment
from citadelle.lab import Clone, Lab, LabInventory
from citadelle.lab.collector import Collector
from citadelle.lab.image import DEFAULT_ADMIN_GROUP, DEFAULT_ADMIN_USER
from citadelle.lab.ntp import TimeServer
from citadelle.lab.outputs import lab_outputs
from citadelle.lab.target import LAB_CLONES, LabTarget, lab_volumes
from citadelle.paths import LAB_DIR

# The names the lab target gives its clones, so `citadelle deploy dev --target lab` run on the
# session's lab run folder finds them up and hardened (tests/pipeline/test_main_command.py).
HARDENED_CLONES = LAB_CLONES


class CloneFactory:
    """Restores clones on demand and remembers them for teardown."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.names: list[str] = []

    def __call__(self, clones: Mapping[str, str],
                 volumes: Mapping[str, int] | None = None) -> LabInventory:
        live = {row.name for row in self.lab.status()}
        clash = sorted(live & set(clones))
        if clash:
            raise ValueError(f"clone names already in use in this session: {clash}")
        self.names.extend(clones)
        return self.lab.up(clones, volumes)

    def close(self) -> None:
        names, self.names = self.names, []
        existing = {row.name for row in self.lab.status()}
        self.lab.down([n for n in names if n in existing])


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(root=LAB_DIR, run_dir=tmp_path_factory.mktemp("lab"))
    lab.ensure_golden()
    yield lab
    # Safety net: nothing this session started survives it.
    lab.down()


@pytest.fixture
def lab_clones(lab: Lab) -> Iterator[CloneFactory]:
    factory = CloneFactory(lab)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_lab_clones(lab: Lab) -> Iterator[CloneFactory]:
    factory = CloneFactory(lab)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def lab_time_server() -> Iterator[TimeServer]:
    server = TimeServer(LAB_DIR)
    started_here = server.pid() is None
    server.start()
    yield server
    if started_here:
        server.stop()


@pytest.fixture(scope="session")
def log_collector() -> Iterator[Collector]:
    collector = Collector(LAB_DIR)
    started_here = not collector.running()
    collector.start()
    yield collector
    if started_here:
        collector.stop()


def environment_inventory(clones: Sequence[Clone], out: Path) -> Path:
    """`citadelle inventory dev --target lab` for exactly these clones: what deploy converges
    and verifies."""
    target = LabTarget()
    env = Environment.load("dev", target)
    outputs = lab_outputs(env, tuple(clones), DEFAULT_ADMIN_USER, DEFAULT_ADMIN_GROUP)
    return write_inventory(env, outputs, target.access(env), out / "inventory.yml",
                           target="lab", source="the clones under test").inventory


@pytest.fixture(scope="session")
def lab_inventory() -> Callable[[Sequence[Clone], Path], Path]:
    """The environment's inventory for given clones (see :func:`environment_inventory`)."""
    return environment_inventory


@dataclass(frozen=True)
class HardenedLab:
    lab: Lab
    inventory: LabInventory
    environment_inventory: Path  # the one the converge used, as `citadelle inventory` writes it
    first: harden.HardenResult
    # Wall-clock time the first converge started: a node rebooted by it has a shorter uptime.
    first_started: float


@pytest.fixture(scope="session")
def hardened_converge(lab: Lab, tmp_path_factory: pytest.TempPathFactory,
                      log_collector: Collector,
                      lab_time_server: TimeServer) -> Iterator[HardenedLab]:
    # A run directory of its own: the lab tests' inventories and outputs never see these clones.
    hardened = Lab(root=LAB_DIR, run_dir=tmp_path_factory.mktemp("hardened-lab"))
    factory = CloneFactory(hardened)
    try:
        # With the data volumes the environment gives their server groups, as the lab target.
        inventory = factory(HARDENED_CLONES,
                            lab_volumes(Environment.load("dev", LabTarget()), HARDENED_CLONES))
        runs = tmp_path_factory.mktemp("harden")
        # The deploy pipeline's path: the environment's inventory from the lab target.
        converged = environment_inventory(inventory.clones, runs)
        first_started = time.time()
        first = harden.run_playbook("site", converged, run_dir=runs / "first")
        assert first.ok, first.summary()
        print(f"\nfirst converge: {first.elapsed:.0f} s")
        yield HardenedLab(lab=hardened, inventory=inventory, environment_inventory=converged,
                          first=first, first_started=first_started)
    finally:
        factory.close()
        hardened.down()


@pytest.fixture(scope="session")
def hardened_lab(hardened_converge: HardenedLab) -> LabInventory:
    return hardened_converge.inventory
