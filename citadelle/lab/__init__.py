"""The VM lab: Debian 12 hosts under qemu standing in for the deployed servers.

See docs/vm-lab.md. Entry points: :class:`Lab` (Python), ``citadelle lab`` (CLI) and the
``lab``/``lab_clones`` pytest fixtures in tests/vm/conftest.py.
"""

from citadelle.lab.core import CloneStatus, Golden, Lab
from citadelle.lab.image import BuiltImage, ImageRecipe, default_recipe, recipe_hash
from citadelle.lab.outputs import ROLES, Clone, LabInventory

__all__ = [
    "ROLES",
    "BuiltImage",
    "Clone",
    "CloneStatus",
    "Golden",
    "ImageRecipe",
    "Lab",
    "LabInventory",
    "default_recipe",
    "recipe_hash",
]
