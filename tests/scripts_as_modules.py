"""The repository's scripts (scripts/ is not a package) as modules, for tests of their helpers."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

from flightops.settings import REPO_ROOT


@contextlib.contextmanager
def script_module(name: str) -> Iterator[ModuleType]:
    """scripts/<name>.py loaded as a module for the block, registered in sys.modules meanwhile (a dataclass
    looks its module up there)."""
    module_name = f"flightops_script_{name}"
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[module_name]
