"""The one place that chooses the OpenFlow framework: os-ken (supported) or Ryu (legacy hosts).

os-ken is the maintained fork of Ryu and the supported runtime. Ryu 4.34 does not run on
Python 3.10+, but where an old host has it, `ryu-manager minet_sdn.apps.remote_links` still works
because every framework import in this project goes through here.

Choosing only: importing this module changes nothing in the framework. The hardening of its
OpenFlow listener is apps/guard.py, which the controller installs explicitly.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable, Sequence

PREFERENCE = ("os_ken", "ryu")


def pick_framework(importable: Callable[[str], bool] = None, preference: Sequence[str] = PREFERENCE) -> str:
    """The first framework of `preference` that can be imported."""
    if importable is None:
        importable = lambda name: importlib.util.find_spec(name) is not None  # noqa: E731
    for name in preference:
        if importable(name):
            return name
    raise ImportError("neither os-ken nor ryu is installed: pip install 'os-ken>=4.2,<5'")


FRAMEWORK = pick_framework()


# Imported lazily (PEP 562), so the pure core pulls in only the message parser, never the event loop.
_MODULES = {
    "app_manager": "base.app_manager",
    "ofp_event": "controller.ofp_event",
    "handler": "controller.handler",
    "hub": "lib.hub",
    "ofproto_v1_3": "ofproto.ofproto_v1_3",
    "ofproto_v1_3_parser": "ofproto.ofproto_v1_3_parser",
}


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{FRAMEWORK}.{_MODULES[name]}")
    if name == "BaseApp":
        app_manager = importlib.import_module(f"{FRAMEWORK}.base.app_manager")
        return getattr(app_manager, "OSKenApp", None) or getattr(app_manager, "RyuApp")
    raise AttributeError(name)
