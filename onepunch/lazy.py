"""Modules loaded at their first use, so that commands which compute nothing (`status`, `--help`, a config error)
never pay for importing torch (~3 s of a 3.7 s `onepunch status` on a 2-core CPU).

    torch = lazy("torch")          # a module object now; the real import runs at the first attribute access
    data = lazy("onepunch.data")

Stage modules import their heavy dependencies this way; the library modules below them import normally.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """`name`, imported on first attribute access (importlib's LazyLoader); the module itself if already imported.
    Its parent packages are imported now: keep them light (`onepunch`, `onepunch.models`)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def no_grad(fn):
    """@torch.no_grad() for a module-level function, without importing torch when the module is imported."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)
    return wrapper
