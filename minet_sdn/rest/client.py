"""The one client of the controller's REST API: `minet link ...`, `minet ui`, the watch tools, the
lab (`Lab.rest_call`, `lab status`), tests and benches all call `request()`.

It adds what every request of ours carries: the CSRF header on POSTs (rest/api.py refuses a POST
without it: a cross-site page cannot set it), the token on every write, a JSON body. With `netns`
it opens its connection from inside that network namespace (the lab's controller listens on the
lab's management network, which the root namespace does not reach).
"""
from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from .auth import INSTANCE_HEADER

# Every POST to the controller carries this header (rest/api.py refuses a POST without it with 403):
# a browser's simple cross-site request cannot set it, so no web page can fail a link.
CSRF_HEADER, CSRF_VALUE = "X-Minet", "1"
MAX_REPLY = 64 << 20        # bytes; the controller's biggest answer (every link) is far smaller


class ControllerUnreachable(Exception):
    """Nothing answers; `reason` is the exception the connection met."""

    def __init__(self, message: str, reason: Optional[BaseException] = None):
        super().__init__(message)
        self.reason = reason


class Text(str):
    """A non-JSON answer, with the content type it came with."""
    ctype = ""


class NotOurApi(Exception):
    """Something answered at the controller's address, but not with the controller's API."""


class OtherInstance(NotOurApi):
    """A controller answered, but another instance's (or one that does not say which it is)."""


def headers_for(method: str, token: Optional[str] = None) -> Dict[str, str]:
    """What a request of ours carries: the CSRF header on POSTs, the token on every write."""
    headers: Dict[str, str] = {}
    if method == "POST":
        headers[CSRF_HEADER] = CSRF_VALUE
    if token and method not in ("GET", "HEAD"):
        headers["Authorization"] = f"Bearer {token}"
    return headers


class _Connection(http.client.HTTPConnection):
    """HTTP over a connection opened inside network namespace `netns` (None: here)."""

    def __init__(self, host: str, port: int, timeout: float, netns: Optional[str]):
        super().__init__(host, port, timeout=timeout)
        self._netns = netns

    def connect(self) -> None:
        if self._netns is None:
            super().connect()
        else:
            from ..host import netns_connect
            self.sock = netns_connect(self._netns, self.host, self.port, timeout=self.timeout)


def request(base_url: str, method: str, path: str, body: Any = None, *, token: Optional[str] = None,
            instance: Optional[str] = None, timeout: float = 10.0, netns: Optional[str] = None,
            ) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON or Text) of `method path` on the controller at `base_url`.

    `body`: sent as JSON (a POST without one sends an empty body). `token`: sent on writes
    (rest/auth.py). `instance`: the topology name the controller must answer with
    (X-Minet-Instance); OtherInstance when it names another or none, checked before anything is
    decoded: a write then reached another controller, which refused it without our token.
    NotOurApi when the answer is not JSON (HTML, bad JSON, not UTF-8) where JSON was promised;
    ControllerUnreachable when nothing answers."""
    method = method.upper()
    url = base_url.rstrip("/") + path
    payload = None if body is None else json.dumps(body).encode()
    headers = headers_for(method, token)
    if payload is not None:
        headers["Content-Type"] = "application/json"
    elif method in ("POST", "PUT", "PATCH"):
        payload = b""
    try:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        conn = _Connection(parts.hostname, parts.port or 80, timeout, netns)
        try:
            conn.request(method, parts.path.rstrip("/") + path, body=payload, headers=headers)
            resp = conn.getresponse()
            _check_instance(base_url, resp.headers, instance)
            raw = resp.read(MAX_REPLY)
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise ControllerUnreachable(f"cannot reach the controller at {base_url}: {exc}", exc) from None
    return resp.status, _decode(url, raw, resp.headers.get("Content-Type", ""))


def call(base_url: str, method: str, path: str, timeout: float = 10.0, token: Optional[str] = None,
         instance: Optional[str] = None) -> Tuple[int, Any]:
    """request() without a body (what `minet link` sends)."""
    return request(base_url, method, path, token=token, instance=instance, timeout=timeout)


def identify(base_url: str, instance: str, timeout: float = 10.0, netns: Optional[str] = None) -> None:
    """Make sure the controller at `base_url` is `instance`'s (before a write): OtherInstance if
    not, ControllerUnreachable if nothing answers. Only the header counts, never the body (a 503
    while switches are missing still says who it is)."""
    try:
        request(base_url, "GET", "/healthz", instance=instance, timeout=timeout, netns=netns)
    except NotOurApi as exc:
        if isinstance(exc, OtherInstance):
            raise


def _check_instance(base_url: str, headers, instance: Optional[str]) -> None:
    if instance is None:
        return
    said = (headers.get(INSTANCE_HEADER) if headers is not None else None) or ""
    if said != instance:
        what = f"the controller of instance {said[:40]!r}" if said else "something that does not name its instance"
        raise OtherInstance(f"{base_url} is {what}, not the controller of {instance!r}: refused")


def describe(body: Any, ctype: str = "") -> str:
    """A short one-line description of an answer, for error messages."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        text = " ".join(body.split())
        kind = (ctype or getattr(body, "ctype", "")).split(";")[0].strip() or "text"
        return f"{kind} {text[:60]!r}" + ("..." if len(text) > 60 else "")
    text = json.dumps(body)
    return f"JSON {text[:60]}" + ("..." if len(text) > 60 else "")


def _decode(url: str, body: bytes, ctype: str) -> Any:
    if ctype.startswith("application/json"):
        try:
            return json.loads(body.decode("utf-8") or "null")
        except UnicodeDecodeError:
            raise NotOurApi(f"{url} answered bytes that are not UTF-8 text ({len(body)} bytes)") from None
        except (ValueError, RecursionError):
            raise NotOurApi(f"{url} answered bad JSON: {describe(body, 'text')}") from None
    text = Text(body.decode("utf-8", errors="replace"))
    text.ctype = ctype
    return text
