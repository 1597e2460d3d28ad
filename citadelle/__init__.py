"""Citadelle operator CLI: offline plan, policy gate, VM lab, hardening, checks and evidence."""

__version__ = "0.1.0"
