"""A small client for the controller's REST API (used by `minet link ...`)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Optional, Tuple

from .auth import INSTANCE_HEADER

# Every POST to the controller carries this header (rest/api.py refuses a POST without it with 403):
# a browser's simple cross-site request cannot set it, so no web page can fail a link.
CSRF_HEADER, CSRF_VALUE = "X-Minet", "1"
MAX_REPLY = 64 << 20        # bytes; the controller's biggest answer (every link) is far smaller


class ControllerUnreachable(Exception):
    pass


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


def call(base_url: str, method: str, path: str, timeout: float = 10.0, token: Optional[str] = None,
         instance: Optional[str] = None) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON or text) of `method path` on the controller at `base_url`.

    `token`: sent on writes (rest/auth.py). `instance`: the topology name the controller must answer
    with (X-Minet-Instance); OtherInstance when it names another or none, checked before anything is
    decoded: a write then reached another controller, which refused it without our token.
    NotOurApi when the answer is not JSON (HTML, bad JSON, not UTF-8) where JSON was promised."""
    url = base_url.rstrip("/") + path
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                 headers=headers_for(method, token))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            _check_instance(base_url, resp.headers, instance)
            return resp.status, _decode(url, resp.read(MAX_REPLY), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        _check_instance(base_url, exc.headers, instance)
        return exc.code, _decode(url, exc.read(MAX_REPLY), exc.headers.get("Content-Type", ""))
    except (urllib.error.URLError, OSError, ValueError, http_errors()) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControllerUnreachable(f"cannot reach the controller at {base_url}: {reason}")


def identify(base_url: str, instance: str, timeout: float = 10.0) -> None:
    """Make sure the controller at `base_url` is `instance`'s (before a write): OtherInstance if
    not, ControllerUnreachable if nothing answers. Only the header counts, never the body."""
    req = urllib.request.Request(base_url.rstrip("/") + "/healthz", method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            _check_instance(base_url, resp.headers, instance)
    except urllib.error.HTTPError as exc:         # 503 while switches are missing: still says who it is
        _check_instance(base_url, exc.headers, instance)
    except (urllib.error.URLError, OSError, ValueError, http_errors()) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControllerUnreachable(f"cannot reach the controller at {base_url}: {reason}")


def _check_instance(base_url: str, headers, instance: Optional[str]) -> None:
    if instance is None:
        return
    said = (headers.get(INSTANCE_HEADER) if headers is not None else None) or ""
    if said != instance:
        what = f"the controller of instance {said[:40]!r}" if said else "something that does not name its instance"
        raise OtherInstance(f"{base_url} is {what}, not the controller of {instance!r}: refused")


def http_errors():
    import http.client
    return http.client.HTTPException


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
