"""The controller's REST API as a plain WSGI application (no framework).

  GET  /healthz                   liveness and how many switches are connected
  GET  /v1/links                  every inter-AS link: endpoints, servers, remote/local, state,
                                  tunnel liveness, packet/byte counters of its flows
  GET  /v1/links/<id>             one link
  POST /v1/links/<id>/fail        take a remote link down administratively (both routers lose carrier)
  POST /v1/links/<id>/restore     bring it back
  GET  /v1/switches               every remote bridge: dpid, server, peer, connected, tunnel liveness
  GET  /metrics                   Prometheus text format
  POST /v1/reload                 re-read the topology file (links added or removed) and converge
  GET  /ui, /v1/watch/...         the status page and its JSON (rest/page.py)

Every request that is not a GET must carry the controller's token (`Authorization: Bearer TOKEN`,
rest/auth.py; 401 without it, 403 with a wrong one, nothing done): any local user can reach a loopback
listener. And every POST must carry the header `X-Minet: 1` (403 otherwise): a web page open in a
browser on the same machine can send a body-less cross-site POST to a loopback listener, but not a
custom header without a CORS preflight, which this API never grants. Every answer names the instance
(`X-Minet-Instance`), so clients can refuse to act on another instance's controller.

`service` is anything with the methods used below; the os-ken app provides them.
"""
from __future__ import annotations

import io
import json
import re
from typing import Callable, Iterable, List, Optional, Tuple

from ..core import errors
from . import auth, bodies, page
from .client import CSRF_HEADER, CSRF_VALUE

CSRF_ENVIRON = "HTTP_" + CSRF_HEADER.upper().replace("-", "_")

# ASCII digits only (\d would take any script's), and few of them: a link id is at most 5 digits, and
# int() of thousands of digits raises (Python's int-digit limit) instead of answering 404.
LINK_ACTION = re.compile(r"/v1/links/([0-9]+)/(fail|restore)")
LINK_ONE = re.compile(r"/v1/links/([0-9]+)")
MAX_ID_DIGITS = 9


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


READ_METHODS = ("GET", "HEAD")


def make_app(service, token: Optional[str] = None) -> Callable:
    """`token`: the one writes need; default: the service's `rest_token` (none: every write refused)."""
    topo = getattr(service, "topo", None)
    instance = str(getattr(topo, "name", "") or "")

    def app(environ, start_response) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        try:
            if method == "POST" and environ.get(CSRF_ENVIRON, "").strip() != CSRF_VALUE:
                raise ApiError(403, f"a POST needs the header {CSRF_HEADER}: {CSRF_VALUE} "
                                    "(refused: it could be a cross-site request)")
            if method not in READ_METHODS:
                refused = auth.check(environ.get("HTTP_AUTHORIZATION"),
                                     token if token is not None else getattr(service, "rest_token", None))
                if refused is not None:
                    raise ApiError(refused, "this request changes state: send the controller's token "
                                            f"(Authorization: Bearer TOKEN; the token is in the file "
                                            f"{auth.TOKEN_FILE} beside the controller's state, readable by root)"
                                   if refused == 401 else "wrong token: refused")
            if page.handles(path):                  # the status page: minet_sdn/rest/page.py
                if method == "POST":
                    _check_body(service, path, environ)
                status, ctype, body = page.route(service, method, path, environ)
            else:
                status, ctype, body = _route(service, method, path)
        except ApiError as exc:
            status, ctype, body = exc.status, "application/json", _json({"error": exc.message})
        except errors.ControllerError as exc:      # the controller's refusals, as HTTP
            status, ctype, body = _status(exc), "application/json", _json({"error": str(exc)})
        except Exception as exc:       # never let one request take the controller down
            status, ctype, body = 500, "application/json", _json({"error": f"{type(exc).__name__}: {exc}"})
        headers: List[Tuple[str, str]] = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
        if instance:
            headers.append((auth.INSTANCE_HEADER, instance))
        start_response(f"{status} {_REASONS.get(status, '')}", headers)
        return [body]
    return app


def _check_body(service, path: str, environ) -> None:
    """A JSON body, strictly parsed (bodies.py); a matrix checked against the topology's ASes. The
    handler then reads the canonical re-serialisation, never the request's own bytes."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
        return                                  # the handler refuses it
    stream = environ.get("wsgi.input")
    raw = stream.read() if stream is not None else b""
    try:
        obj = bodies.strict_json(raw)
        if path == "/v1/watch/matrix":
            allowed = bodies.allowed_ases(service)
            if allowed is None:
                raise ApiError(503, "no topology loaded")
            obj = bodies.matrix(obj, allowed)
    except bodies.BadBody as exc:
        raise ApiError(400, f"refused: {exc}")
    canonical = json.dumps(obj, allow_nan=False).encode()
    environ["wsgi.input"] = io.BytesIO(canonical)
    environ["CONTENT_LENGTH"] = str(len(canonical))


_STATUS = ((errors.NotFound, 404), (errors.Conflict, 409), (errors.Invalid, 400))


def _status(exc: "errors.ControllerError") -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 400)


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode()


def _route(service, method: str, path: str):
    m = LINK_ACTION.fullmatch(path)
    if m:
        _allow(method, "POST")
        link_id = _link_id(m.group(1))
        view = service.fail_link(link_id) if m.group(2) == "fail" else service.restore_link(link_id)
        return 200, "application/json", _json(view)
    m = LINK_ONE.fullmatch(path)
    if m:
        _allow(method, "GET")
        return 200, "application/json", _json(service.link(_link_id(m.group(1))))
    if path == "/v1/reload":
        _allow(method, "POST")
        return 200, "application/json", _json(service.reload())
    routes = {
        "/healthz": lambda: _health(service.health()),
        "/v1/links": lambda: (200, "application/json", _json({"links": service.links()})),
        "/v1/switches": lambda: (200, "application/json", _json({"switches": service.switches()})),
        "/metrics": lambda: (200, "text/plain; version=0.0.4", service.metrics().encode()),
    }
    if path not in routes:
        raise ApiError(404, f"no such resource: {path}")
    _allow(method, "GET")
    return routes[path]()


def _link_id(digits: str) -> int:
    if len(digits) > MAX_ID_DIGITS:
        raise ApiError(404, f"no link {digits[:12]}... ({len(digits)} digits)")
    return int(digits)


def _health(health: dict):
    """200 while the controller can do its job, 503 (with the reason in the body) once it cannot."""
    return (200 if health.get("status") == "ok" else 503), "application/json", _json(health)


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise ApiError(405, f"use {allowed}")
