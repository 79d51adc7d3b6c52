"""A small client for the controller's REST API (used by `minet link ...`)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Tuple

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


def call(base_url: str, method: str, path: str, timeout: float = 10.0) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON or text) of `method path` on the controller at `base_url`.

    NotOurApi when the answer is not JSON (HTML, bad JSON, not UTF-8) where JSON was promised."""
    url = base_url.rstrip("/") + path
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,
                                 headers={CSRF_HEADER: CSRF_VALUE} if method == "POST" else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, _decode(url, resp.read(MAX_REPLY), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(url, exc.read(MAX_REPLY), exc.headers.get("Content-Type", ""))
    except (urllib.error.URLError, OSError, ValueError, http_errors()) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControllerUnreachable(f"cannot reach the controller at {base_url}: {reason}")


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
