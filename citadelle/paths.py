"""Where the project's files are, resolved from the installed package (editable install)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAM_DIR = REPO_ROOT / "infra"
POLICY_DIR = REPO_ROOT / "policies"
ROLES_DIR = REPO_ROOT / "roles"
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
ENVIRONMENTS_DIR = REPO_ROOT / "environments"
REFERENCE_DIR = REPO_ROOT / "reference"
PROJECT_FILE = REPO_ROOT / "Pulumi.yaml"
LAB_DIR = REPO_ROOT / ".lab"
RUNS_DIR = REPO_ROOT / "runs"
