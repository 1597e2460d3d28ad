"""The environment every Pulumi and Ansible subprocess runs with: quiet toward the outside.

For SecNumCloud 19.2/19.6 (technical data stays in the EU, no technical means for a non-EU
party to obtain it): no update check, no plugin download, no Copilot, no Pulumi Cloud token
handed down, no Galaxy. Every ``citadelle`` command that starts ``pulumi``, ``ansible-*`` or
``ansible-runner`` builds its environment with :func:`quiet_env`.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class QuietSetting:
    name: str
    value: str
    why: str


def collections_path() -> str:
    # The collections shipped inside the pinned `ansible` package, and nothing else.
    return sysconfig.get_paths()["purelib"]


QUIET_SETTINGS: tuple[QuietSetting, ...] = (
    QuietSetting("PULUMI_SKIP_UPDATE_CHECK", "true",
                 "the CLI otherwise asks a US service for the latest version on every command"),
    QuietSetting("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true",
                 "a missing provider plugin fails instead of being downloaded from "
                 "get.pulumi.com or GitHub; plugins are installed once from the in-region mirror"),
    QuietSetting("PULUMI_COPILOT", "false",
                 "Copilot sends update diagnostics to Pulumi Cloud's AI service"),
    QuietSetting("PULUMI_SUPPRESS_COPILOT_LINK", "true",
                 "no link inviting operators to paste failures into a US service"),
    QuietSetting("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true",
                 "the DIY (self-managed) backend is the intended one; its warnings are noise"),
    QuietSetting("AWS_EC2_METADATA_DISABLED", "true",
                 "the S3 client of the state backend never probes an EC2 metadata service "
                 "for credentials"),
    QuietSetting("PIP_DISABLE_PIP_VERSION_CHECK", "1",
                 "the Python language host may run pip: no version lookup on PyPI"),
    QuietSetting("ANSIBLE_GALAXY_SERVER", "https://galaxy.invalid",
                 "a stray `ansible-galaxy install` fails (.invalid never resolves) instead of "
                 "reaching galaxy.ansible.com"),
    QuietSetting("ANSIBLE_COLLECTIONS_PATH", "<venv site-packages>",
                 "only the collections of the pinned ansible package; ~/.ansible/collections "
                 "(where Galaxy installs) is never searched"),
    QuietSetting("ANSIBLE_LINT_NODEPS", "1",
                 "ansible-lint neither installs requirements from Galaxy nor looks up its "
                 "latest release on GitHub"),
    QuietSetting("DO_NOT_TRACK", "1",
                 "the cross-tool opt-out of usage reporting (consoledonottrack.com), for any "
                 "helper that honours it"),
)

# Credentials that only Pulumi Cloud accepts: never handed to a subprocess.
NEVER_PASSED = ("PULUMI_ACCESS_TOKEN", "PULUMI_API")



def quiet_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the settings that keep Pulumi and Ansible silent toward the outside."""
    env = {k: v for k, v in base.items() if k not in NEVER_PASSED}
    for setting in QUIET_SETTINGS:
        env[setting.name] = setting.value
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path()
    return env

