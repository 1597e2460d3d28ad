"""Where the project's files are: the checkout holding ``Pulumi.yaml``.

Found from ``CITADELLE_ROOT`` when set, else from the package's own location (an editable
install or a plain checkout on ``PYTHONPATH``), else by walking up from the working directory,
so a non-editable install run inside a checkout finds that checkout.
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_root(path: Path) -> bool:
    return (path / "Pulumi.yaml").is_file() and (path / "policies").is_dir()


def find_root() -> Path:
    explicit = os.environ.get("CITADELLE_ROOT")
    if explicit:
        return Path(explicit).resolve()
    package_parent = Path(__file__).resolve().parent.parent
    if _is_root(package_parent):
        return package_parent
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if _is_root(p)), package_parent)


REPO_ROOT = find_root()
PROGRAM_DIR = REPO_ROOT / "infra"
POLICY_DIR = REPO_ROOT / "policies"
ROLES_DIR = REPO_ROOT / "roles"
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
ENVIRONMENTS_DIR = REPO_ROOT / "environments"
REFERENCE_DIR = REPO_ROOT / "reference"
PROJECT_FILE = REPO_ROOT / "Pulumi.yaml"
LAB_DIR = REPO_ROOT / ".lab"
RUNS_DIR = REPO_ROOT / "runs"


def inventory_path(env: str) -> Path:
    """Where `citadelle inventory ENV` writes the environment's inventory by default."""
    return RUNS_DIR / env / "inventory.yml"


def migration_run_dir(env: str, target: str) -> Path:
    """The migration's run folder of ``env``; a stand-in target's runs (the lab's) apart."""
    return RUNS_DIR / "migrate" / (env if target == "cloud" else f"{env}-{target}")
