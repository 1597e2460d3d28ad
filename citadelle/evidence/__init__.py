"""Findings, their one SARIF and one JUnit writer, and the auditors' evidence report."""
