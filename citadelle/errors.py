"""One exception type for every refusal the operator must read as one clear line."""

from __future__ import annotations


class CitadelleError(Exception):
    """An actionable error: printed as a single line, never as a stack trace.

    ``exit_code`` follows the CLI convention: 1 for a finding (policy violation, drift),
    2 for bad input or a broken program/pack.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
