"""A small client for the controller's REST API (used by `minet link ...`)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Tuple


class ControllerUnreachable(Exception):
    pass


def call(base_url: str, method: str, path: str, timeout: float = 10.0) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON or text) of `method path` on the controller at `base_url`."""
    req = urllib.request.Request(base_url.rstrip("/") + path, method=method,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, _decode(resp.read(), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read(), exc.headers.get("Content-Type", ""))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControllerUnreachable(f"cannot reach the controller at {base_url}: {reason}")


def _decode(body: bytes, ctype: str) -> Any:
    if ctype.startswith("application/json"):
        return json.loads(body.decode() or "null")
    return body.decode(errors="replace")
