"""Request bodies, checked before any handler sees them (issue 21: one request took the controller's memory).

Strict JSON only: no NaN or Infinity (Python's json takes them, a browser's JSON.parse does not, so one
stored body broke the status page for every viewer), no nesting deeper than MAX_DEPTH. A connectivity
matrix (`POST /v1/watch/matrix`) may name only the topology's own ASes, each pair once: what is kept
then grows with the topology (N ASes: N x (N - 1) pairs), never with what a request claims.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Optional

MAX_DEPTH = 32
MAX_NAME = 64
MAX_ERROR = 300
MAX_RTT_MS = 600_000.0


# What one matrix pair takes in JSON at most ({"src": 65535, "dst": 65535, "ok": false, "rtt_ms":
# 600000.0} plus the separator), and each AS's error text: the body a topology's matrix can need.
PAIR_BYTES = 80
SLACK_BYTES = 64 * 1024
MAX_MATRIX_BODY = 64 << 20


def matrix_body_bound(n_ases: int) -> int:
    """Bytes the REST server must accept in one request so that `minet matrix` can store the
    whole matrix of a topology of `n_ases` ASes (64 KiB is too little from about 28 ASes on)."""
    need = n_ases * max(0, n_ases - 1) * PAIR_BYTES + n_ases * (MAX_ERROR + 16) + SLACK_BYTES
    return min(MAX_MATRIX_BODY, need)


class BadBody(ValueError):
    pass


def _no_constant(name: str):
    raise BadBody(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("body is not UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except BadBody:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadBody(f"body is not JSON: {str(exc)[:100]}") from None
    if _depth(obj) > MAX_DEPTH:
        raise BadBody(f"body nests deeper than {MAX_DEPTH} levels")
    return obj


def _depth(obj: Any) -> int:
    depth, level = 0, [obj]
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        nxt: List[Any] = []
        for o in level:
            if isinstance(o, dict):
                nxt.extend(o.values())
            elif isinstance(o, list):
                nxt.extend(o)
        level = nxt
    return depth


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadBody(f"{what}: {json.dumps(v)[:40]} is not an integer")
    return v


def _number(v: Any, what: str, low: float, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        raise BadBody(f"{what}: {json.dumps(v)[:40]} is not a number in {low:g}..{high:g}")
    return float(v)


def matrix(obj: Any, allowed: Iterable[int]) -> Dict[str, Any]:
    """A matrix body (`minet matrix --json` object, optionally asns/at/seconds/name/errors/family)
    checked against the topology's ASes `allowed`; the canonical object (only the known keys)."""
    allowed = set(allowed)
    if not isinstance(obj, dict):
        raise BadBody("a matrix is a JSON object")
    pairs = obj.get("pairs")
    if not isinstance(pairs, list):
        raise BadBody("no pairs list")
    if len(pairs) > len(allowed) * max(0, len(allowed) - 1):
        raise BadBody(f"{len(pairs)} pairs: the topology has {len(allowed)} ASes")
    clean: List[Dict[str, Any]] = []
    seen = set()
    for i, p in enumerate(pairs, 1):
        if not isinstance(p, dict):
            raise BadBody(f"pairs[{i}] is not an object")
        src, dst = _int(p.get("src"), f"pairs[{i}].src"), _int(p.get("dst"), f"pairs[{i}].dst")
        for side, asn in (("src", src), ("dst", dst)):
            if asn not in allowed:
                raise BadBody(f"pairs[{i}].{side}: AS {asn} is not in the topology")
        if src == dst or (src, dst) in seen:
            raise BadBody(f"pairs[{i}]: {src} -> {dst} is not a new pair of two ASes")
        seen.add((src, dst))
        ok = p.get("ok")
        if not isinstance(ok, bool):
            raise BadBody(f"pairs[{i}].ok is not true or false")
        rtt = p.get("rtt_ms")
        clean.append({"src": src, "dst": dst, "ok": ok,
                      "rtt_ms": None if rtt is None else _number(rtt, f"pairs[{i}].rtt_ms", 0, MAX_RTT_MS)})
    out: Dict[str, Any] = {"pairs": clean}
    asns = obj.get("asns")
    if asns is not None:
        if not isinstance(asns, list) or len(asns) > len(allowed):
            raise BadBody(f"asns: a list of at most {len(allowed)} of the topology's ASes")
        listed = [_int(a, "asns") for a in asns]
        unknown = [a for a in listed if a not in allowed]
        if unknown or len(set(listed)) != len(listed):
            raise BadBody(f"asns: AS {unknown[0]} is not in the topology" if unknown else "asns: an AS twice")
        out["asns"] = listed
    for key, high in (("at", 1e11), ("seconds", 1e6)):
        if obj.get(key) is not None:
            out[key] = _number(obj[key], key, 0, high)
    if obj.get("family") is not None:
        if obj["family"] not in (4, 6) or isinstance(obj["family"], bool):
            raise BadBody("family: 4 or 6")
        out["family"] = obj["family"]
    name = obj.get("name")
    if name is not None:
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise BadBody(f"name: a string of at most {MAX_NAME} characters")
        out["name"] = name
    errors = obj.get("errors")
    if errors is not None:
        if not isinstance(errors, dict) or len(errors) > len(allowed):
            raise BadBody("errors: an object of at most one message per AS")
        clean_errors: Dict[str, str] = {}
        for k, v in errors.items():
            if not k.isascii() or not k.isdigit() or len(k) > 10 or int(k) not in allowed or not isinstance(v, str):
                raise BadBody(f"errors: {k[:20]!r} is not an AS of the topology with a message")
            clean_errors[k] = v[:MAX_ERROR]
        out["errors"] = clean_errors
    return out


def allowed_ases(service) -> Optional[List[int]]:
    topo = getattr(service, "topo", None)
    ases = getattr(topo, "ases", None)
    return None if ases is None else list(ases)
