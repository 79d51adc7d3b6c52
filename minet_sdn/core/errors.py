"""What the controller refuses, in its own terms; the REST layer (rest/api.py) maps each to an
HTTP status, so nothing below it knows HTTP."""
from __future__ import annotations


class ControllerError(Exception):
    """A request the controller refuses; the message is one line meant for the user."""


class NotFound(ControllerError):
    """No such thing (a link id out of range)."""


class Conflict(ControllerError):
    """The request does not fit the current state (a local link, another instance's topology)."""


class Invalid(ControllerError):
    """The input is wrong (a topology file that does not load)."""
