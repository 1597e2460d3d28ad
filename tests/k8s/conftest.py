"""tests/k8s: the Kubernetes side of every environment, recorded offline."""

from __future__ import annotations

import sys
from pathlib import Path

# pytest runs with --import-mode=importlib: make the shared helpers (k8s_support) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
