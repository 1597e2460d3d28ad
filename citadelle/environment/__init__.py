"""The environment's one home: its settings, its stack outputs, and what they mean for each stage.

Every command takes an :class:`Environment`, built once by :meth:`Environment.load`: the typed
settings (``citadelle.environment.settings``, the schema the Pulumi program imports too), the
flat stack config it was read from, and the target that supplies the deployed environment's
stack outputs and access (the cloud through the Pulumi CLI or a saved file; the VM lab).
The projections every stage needs live here once: the allow-list with its one host matcher
(``settings.sovereignty``), the policy pack's config and the hardening roles' variables
(``citadelle.environment.projections``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from citadelle import paths
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.settings import ConfigError, Settings, parse_settings, raw_from_values
from citadelle.environment.stackconfig import StackConfig, load_stack_config
from citadelle.errors import CitadelleError

if TYPE_CHECKING:
    from citadelle.environment.targets import Target


def settings_from(config: StackConfig) -> Settings:
    """The validated settings of flat stack config, read without the Pulumi runtime.

    The program's own reading (``raw_from_values``); ``secure:`` values are the offline
    placeholders of ``citadelle.environment.stackconfig``.
    """
    try:
        return parse_settings(config.stack, raw_from_values(config.values, config.secret_keys))
    except ConfigError as err:
        raise CitadelleError(str(err), exit_code=2) from None


@dataclass(frozen=True)
class Environment:
    """One environment (dev, mirror, prod) as every stage sees it."""

    name: str
    config: StackConfig
    settings: Settings
    project_file: Path = paths.PROJECT_FILE
    target: Target | None = field(default=None, compare=False)

    @classmethod
    def load(cls, name: str, target: Target | None = None, *,
             project_file: Path = paths.PROJECT_FILE,
             stack_file: Path | None = None) -> Environment:
        """Read and validate ``name``'s stack config once; one clear line on any problem."""
        config = load_stack_config(project_file, name, stack_file)
        return cls(name=name, config=config, settings=settings_from(config),
                   project_file=project_file, target=target)

    @property
    def prefix(self) -> str:
        """The resource-name prefix the program gives everything of this environment."""
        return f"citadelle-{self.name}"

    def outputs(self) -> StackOutputs:
        """The deployed environment's stack outputs, from its target."""
        if self.target is None:
            raise CitadelleError(f"{self.name}: no deployment target chosen (--target)")
        return self.target.outputs(self)


def env_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                help_text: str, **options: object) -> argparse.ArgumentParser:
    """``citadelle NAME ENV ...``: a command about one environment, its first argument."""
    options.setdefault("description", help_text)
    parser = subparsers.add_parser(name, help=help_text, **options)  # type: ignore[arg-type]
    parser.add_argument("env", help="environment (stack): dev, mirror or prod")
    return parser
