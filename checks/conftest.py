"""Post-deploy SecNumCloud / BP-028 checks: hosts, per-host cases, waivers, evidence.

Run by ``citadelle verify`` (citadelle/checks_runner.py) as::

    pytest checks --citadelle-inventory runs/dev/inventory.yml [--citadelle-waivers FILE ...]

- every test takes ``target`` (one host of the inventory) and is generated once per host it
  applies to: every host, unless its ``applies(groups=..., tiers=..., when=...,
  recommendation=..., role=...)`` mark narrows it (node roles, the host's ``citadelle_tier``,
  an inventory variable that must be set, a BP-028 recommendation within the host's level for
  that role);
  the hosts it does not apply to are recorded with the reason, never silently dropped;
- a module may declare ``CASES = {"argname": function(target) -> [Case, ...]}`` to add per-host
  cases (one sysctl, one mount, one audited command...), each with its own requirement marks;
  a check that applies to a host and has no case there fails (nothing would be checked);
- every test carries ``snc(...)`` and/or ``bp028(...)`` marks; they go to the JUnit report as
  the ``requirements`` property, with the host, so the evidence report can map results to ids;
- a check covered by a valid waiver is marked xfail with the waiver as its reason (JUnit
  ``skipped`` with that message when it fails; a pass is reported as a pass);
- ``--citadelle-catalogue FILE`` writes the collected checks and their ids as JSON (used with
  ``--collect-only`` by ``citadelle report``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from checks.expected import Expected
from checks.target import Case, Target
from citadelle.deploy.inventory import host_layers, load_inventory
from citadelle.deploy.waivers import Waiver, WaiverSet, load_waivers
from citadelle.errors import CitadelleError

MARKERS = (
    "snc(*ids): SecNumCloud 3.2 requirement ids a check evidences",
    "bp028(*ids): ANSSI-BP-028 recommendation ids a check evidences",
    "applies(groups=(), tiers=(), when=None, recommendation=None, role=None): the hosts a "
    "check applies to",
)
# The value of a per-host case argument when the check applies and has no case on the host.
NO_CASE = "no case"
_TARGETS = pytest.StashKey[list[Target]]()
_NOT_APPLICABLE = pytest.StashKey[list[dict[str, Any]]]()
_WAIVERS = pytest.StashKey[WaiverSet]()
_TODAY = pytest.StashKey[dt.date]()


CaseFactory = Callable[[Target], Iterable[Case]]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("citadelle", "Citadelle post-deploy checks")
    group.addoption("--citadelle-inventory", metavar="FILE",
                    help="inventory written by `citadelle inventory`")
    group.addoption("--citadelle-waivers", metavar="FILE", action="append", default=[],
                    help="waiver file (repeatable)")
    group.addoption("--citadelle-today", metavar="YYYY-MM-DD",
                    help="date waivers are judged against (default: today, UTC)")
    group.addoption("--citadelle-host", metavar="NAME", action="append", default=[],
                    help="check only this inventory host (repeatable); with it, checks that "
                    "need no host run only if --citadelle-hostless is given")
    group.addoption("--citadelle-hostless", action="store_true",
                    help="with --citadelle-host: also run the checks that need no host")
    group.addoption("--citadelle-catalogue", metavar="FILE",
                    help="write the collected checks and their requirement ids as JSON")


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    path = config.getoption("--citadelle-inventory")
    if not path:
        raise pytest.UsageError("checks need --citadelle-inventory FILE (citadelle inventory)")
    try:
        inventory_path = Path(path).resolve()
        hosts = host_layers(load_inventory(inventory_path))
        waivers = load_waivers([Path(p) for p in config.getoption("--citadelle-waivers")])
    except CitadelleError as err:
        raise pytest.UsageError(err.message) from None
    targets = []
    for name, (group_vars, own) in sorted(hosts.items()):
        variables = {**group_vars, **own}
        password = variables.get("citadelle_become_password_file")
        targets.append(Target(
            name=name, groups=tuple(variables["group_names"]), vars=Expected(group_vars, own),
            ssh_config=Path(variables.get("citadelle_ssh_config")
                            or inventory_path.with_name("ssh_config")),
            password_file=Path(password) if password else None))
    limit = config.getoption("--citadelle-host")
    unknown = sorted(set(limit) - {t.name for t in targets})
    if unknown:
        raise pytest.UsageError(f"--citadelle-host {unknown[0]}: not in {inventory_path}")
    config.stash[_TARGETS] = [t for t in targets if not limit or t.name in limit]
    config.stash[_NOT_APPLICABLE] = []
    config.stash[_WAIVERS] = waivers
    today = config.getoption("--citadelle-today")
    config.stash[_TODAY] = (dt.date.fromisoformat(today) if today
                            else dt.datetime.now(dt.UTC).date())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "waiver" in metafunc.fixturenames:
        waivers = metafunc.config.stash[_WAIVERS].waivers
        metafunc.parametrize("waiver", [
            pytest.param(w, id=w.key, marks=[
                pytest.mark.bp028(w.requirement) if w.requirement.startswith("R")
                else pytest.mark.snc(w.requirement)]) for w in waivers])
    if "target" not in metafunc.fixturenames:
        return
    targets = []
    for target in metafunc.config.stash[_TARGETS]:
        reason = not_applicable(metafunc.definition, target)
        if reason is None:
            targets.append(target)
            continue
        metafunc.config.stash[_NOT_APPLICABLE].append({
            "nodeid": f"{metafunc.definition.nodeid}[{target.name}]",
            "check": metafunc.function.__name__,
            "module": metafunc.definition.nodeid.split("::")[0], "host": target.name,
            "groups": list(target.groups), "requirements": requirement_ids(metafunc.definition),
            "not_applicable": reason})
    factories: dict[str, CaseFactory] = getattr(metafunc.module, "CASES", {})
    extra = [name for name in factories if name in metafunc.fixturenames]
    if not extra:
        metafunc.parametrize("target", targets, ids=[t.name for t in targets])
        return
    if len(extra) > 1:
        raise pytest.UsageError(f"{metafunc.function.__name__}: one case argument per check")
    argname = extra[0]
    params = []
    for target in targets:
        cases = list(factories[argname](target))
        params += [pytest.param(target, case.value, id=f"{target.name}-{case.id}",
                                marks=case.marks) for case in cases]
        if not cases:
            params.append(pytest.param(target, NO_CASE, id=f"{target.name}-{NO_CASE}"))
    metafunc.parametrize(("target", argname), params)


def not_applicable(definition: pytest.Item, target: Target) -> str | None:
    """Why the check does not apply to ``target`` (its ``applies`` mark), or None."""
    mark = definition.get_closest_marker("applies")
    if mark is None:
        return None
    groups = tuple(mark.kwargs.get("groups", ()))
    tiers = tuple(mark.kwargs.get("tiers", ()))
    when = mark.kwargs.get("when")
    recommendation, role = mark.kwargs.get("recommendation"), mark.kwargs.get("role")
    if recommendation and recommendation not in target.vars.level_ids(str(role)):
        return (f"{recommendation} is above this host's level "
                f"({target.vars.get(f'{role}_level', target.vars.get('bp028_level'))})")
    if groups and not set(groups) & set(target.groups):
        return f"for {', '.join(groups)} hosts; this one is {', '.join(target.groups)}"
    tier = target.vars.get("citadelle_tier")
    if tiers and tier not in tiers:
        return f"for the {', '.join(tiers)} tier; this host is in {tier or 'no tier'}"
    if when and not target.vars.get(when):
        return f"{when} is not set for this host"
    return None


@pytest.fixture(autouse=True)
def _a_case_to_check(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if "target" in params and NO_CASE in [v for k, v in params.items() if k != "target"]:
        pytest.fail(f"{request.node.originalname} applies to {params['target']} but has no "
                    "case there: the inventory's role variables give it nothing to check")


def requirement_ids(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for name in ("snc", "bp028"):
        for mark in item.iter_markers(name):
            ids.extend(str(a) for a in mark.args)
    return sorted(set(ids))


def _param(item: pytest.Item, name: str) -> Any:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get(name)


def _target_of(item: pytest.Item) -> Target | None:
    target = _param(item, "target")
    return target if isinstance(target, Target) else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    waivers = config.stash[_WAIVERS]
    today = config.stash[_TODAY]
    # Waiver checks with no waiver, and host checks whose hosts are all out of their scope
    # (recorded in the catalogue as not applicable), have nothing to judge.
    hostless_elsewhere = bool(config.getoption("--citadelle-host")) and not config.getoption(
        "--citadelle-hostless")
    empty = [i for i in items
             if ("waiver" in getattr(i, "fixturenames", ())
                 and (hostless_elsewhere or not isinstance(_param(i, "waiver"), Waiver)))
             or ("target" in getattr(i, "fixturenames", ()) and _target_of(i) is None)]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [i for i in items if i not in empty]
    catalogue: list[dict[str, Any]] = []
    for item in items:
        ids = requirement_ids(item)
        if not ids:
            raise pytest.UsageError(f"{item.nodeid}: every check needs snc(...) or bp028(...)")
        item.add_marker(pytest.mark.smoke)
        target = _target_of(item)
        check = getattr(item, "originalname", item.name)
        waived = None
        if target is not None:
            waived, _ = waivers.find(ids, target.name, target.groups, check, today)
            if waived is not None:
                item.add_marker(pytest.mark.xfail(reason=waived.reason(), strict=False))
        item.user_properties.append(("requirements", " ".join(ids)))
        item.user_properties.append(("host", target.name if target else ""))
        if waived is not None:
            item.user_properties.append(("waiver", waived.reason()))
        catalogue.append({"nodeid": item.nodeid, "check": check,
                          "module": item.nodeid.split("::")[0],
                          "host": target.name if target else "",
                          "groups": list(target.groups) if target else [],
                          "requirements": ids})
    not_applicable: list[dict[str, Any]] = config.stash[_NOT_APPLICABLE]
    catalogue.extend(not_applicable)
    path = config.getoption("--citadelle-catalogue")
    if path:
        Path(path).write_text(json.dumps(catalogue, indent=1) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def waiver_set(pytestconfig: pytest.Config) -> WaiverSet:
    return pytestconfig.stash[_WAIVERS]


@pytest.fixture(scope="session")
def today(pytestconfig: pytest.Config) -> dt.date:
    return pytestconfig.stash[_TODAY]
