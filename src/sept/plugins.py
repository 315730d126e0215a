"""Plugins: packages that add backbones, method components or datasets to every sept process.

A package declares an entry point in the group ``sept.plugins`` whose value is a function of no
arguments; sept calls each such function once, the first time a registry is asked for its names
(so the command line and a sweep's worker processes see what it registers)::

    # pyproject.toml of the plugin package
    [project.entry-points."sept.plugins"]
    my_backbone = "my_package.sept_plugin:register"

    # my_package/sept_plugin.py
    def register() -> None:
        from sept.backbones import register_backbone
        register_backbone("my-clap", "my_package.model:MyClap", description="...")

Registering from a script with :func:`sept.backbones.register_backbone` (and the others) needs
none of this, but only that process sees it (a sweep's ``serial`` executor does; ``local`` and
``ray`` workers do not).
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from sept.errors import SeptError

log = logging.getLogger(__name__)

GROUP = "sept.plugins"
_loaded = False


def load_plugins() -> None:
    """Call every ``sept.plugins`` entry point once per process; a failing plugin is one clear error."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=GROUP):
        try:
            ep.load()()
        except Exception as exc:
            raise SeptError(f"sept plugin {ep.name!r} ({ep.value}) failed to register: {exc}") from exc
        log.debug("loaded sept plugin %s (%s)", ep.name, ep.value)
