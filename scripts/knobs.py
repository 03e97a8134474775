"""`--set module.NAME=value` for the measuring scripts: a module constant of onepunch (follow, memory, regions) set
before anything runs, e.g. `--set follow.KEYED=0` (loose matches off)."""

from __future__ import annotations

from onepunch import follow, memory, regions

MODULES = {"follow": follow, "memory": memory, "regions": regions}


def apply(settings: list[str], default: str = "regions") -> None:
    """Each "module.NAME=value" (or "NAME=value": `default`'s) set in order; ints stay ints."""
    for kv in settings:
        key, value = kv.split("=")
        module, _, name = key.rpartition(".")
        setattr(MODULES[module or default], name, int(value) if value.lstrip("-").isdigit() else float(value))
