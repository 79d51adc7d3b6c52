"""Views served on the REST listener besides the API, that the controller itself does not know.

Whoever starts the controller installs them: `minet controller` installs the status page
(watch/page.py: GET /ui, /v1/watch/...). So the controller packages (apps, core, rest) depend on no
view, the lab or the watch tools; without an installed view those paths are 404 like any other.

A view has `handles(path) -> bool` and `route(service, method, path, environ) -> (status,
content type, body)`, and raises rest.api.ApiError for an HTTP error.
"""
from __future__ import annotations

import json
import threading
from typing import Any, List, Tuple

_VIEWS: List[Any] = []
_LOCK = threading.Lock()


def install(view: Any) -> None:
    """Serve `view` (once; the latest installed wins for a path two views handle)."""
    with _LOCK:
        _VIEWS[:] = [v for v in _VIEWS if v is not view] + [view]


def uninstall(view: Any) -> None:
    with _LOCK:
        _VIEWS[:] = [v for v in _VIEWS if v is not view]


def _view(path: str) -> Any:
    return next((v for v in reversed(list(_VIEWS)) if v.handles(path)), None)


def handles(path: str) -> bool:
    return _view(path) is not None


def route(service, method: str, path: str, environ) -> Tuple[int, str, bytes]:
    view = _view(path)
    if view is None:                      # uninstalled between handles() and route()
        return 404, "application/json", (json.dumps({"error": f"no such resource: {path}"}) + "\n").encode()
    return view.route(service, method, path, environ)
