"""The students' page: a read-only view of the mini-Internet for the groups (docs/students-page.md).

Separate from the TA's status page (watch/page.py, on the controller's REST listener, with
fail/restore behind the TA token): its own small server (page_main.py, started by `lab up` through page_server.py),
on this machine's loopback only, never inside the mini-Internet. It shows

  GET  /                      the page (static/students.html, .js, .css)
  GET  /api/info              who is logged in, the routers, the allowed looking-glass forms, the ASes
  POST /api/login             {"user": "as3-demo", "password": "..."} -> session cookie (access: groups)
  POST /api/logout
  GET  /api/matrix            the latest connectivity matrix (what `minet matrix` last sent the controller)
  GET  /api/connections       each AS's inter-AS links and IXP ports, both ends' addresses
  POST /api/lg                {"router": "1.ZURI", "command": "show bgp summary"} (watch/lg.py allow-list)
  POST /api/measure           {"tool": "traceroute"|"ping", "dest": ADDRESS or known name, "from": ASN}

This module is the pure core (no sockets, no processes of its own): the app takes what it needs
as callables (check a password, read the matrix, run the looking glass, run a measurement), so
the unit tests drive it with fakes and the server wires in the lab's.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..watch import lg
from ..watch.measure import TOOLS, MeasureError, address_or_none

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
ASSETS = {"/": ("students.html", "text/html; charset=utf-8"),
          "/static/students.js": ("students.js", "text/javascript; charset=utf-8"),
          "/static/students.css": ("students.css", "text/css; charset=utf-8")}
COOKIE = "minet_students"
SESSION_TTL = 12 * 3600.0          # a class day
MAX_SESSIONS = 4096                # the oldest goes beyond this (no memory growth from logins)
MAX_OUTPUT = 256 * 1024            # bytes of looking-glass or measurement output returned
MAX_BODY = 4096                    # our bodies are a few fields
# Per client (a logged-in group, or a browser on a public page): looking glass and measurements
# start processes, so each client gets a bucket of RUN_BURST runs refilled at RUN_PER_MINUTE.
RUN_PER_MINUTE = 12.0
RUN_BURST = 6
# A public page is reached through loopback (an SSH tunnel, the TA's proxy): every client has the
# same address, so each browser gets an anonymous client cookie (signed by this process) and its
# own bucket. A client that drops its cookie to get a fresh bucket can get at most MINT_BURST new
# cookies, refilled at MINT_PER_MINUTE, per address (for all of that address together); a client
# without a cookie (curl) shares its address's bucket. MAX_RUNNING bounds the page whatever.
CLIENT_COOKIE = "minet_client"
MINT_PER_MINUTE = 20.0
MINT_BURST = 20
MAX_RUNNING = 4                    # processes running at once for the whole page (2-core machines)
# Logins: LOGIN_BURST failures per user name and per client address, refilled at LOGIN_PER_MINUTE;
# beyond that, every login of that name or address is refused until the bucket refills.
LOGIN_PER_MINUTE = 3.0
LOGIN_BURST = 5
HEADERS = [("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
                                       "connect-src 'self'; img-src 'self'; form-action 'self'; "
                                       "frame-ancestors 'none'; base-uri 'none'"),
           ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
           ("X-Frame-Options", "DENY"), ("Cache-Control", "no-store")]


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[List[Tuple[str, str]]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or []


# ---- what the page shows (pure functions of the topology) ---------------------------------------

NEIGHBOR_IS = {"provider": "customer", "customer": "provider", "peer": "peer"}   # a.rel -> what b is to a
INVERSE = {"provider": "customer", "customer": "provider", "peer": "peer"}


def connections(topo) -> Dict[int, List[Dict[str, Any]]]:
    """Each AS's connections, in link order then IXP order: its router, the neighbour AS and
    router, what the neighbour is to this AS (customer, provider, peer), both ends' addresses,
    and for an IXP port the IXP and its route server."""
    rows: Dict[int, List[Dict[str, Any]]] = {asn: [] for asn in sorted(topo.ases)}
    for link in topo.links:
        if getattr(link, "ixp", None):
            continue
        for me, other, rel in ((link.a, link.b, link.rel), (link.b, link.a, INVERSE.get(link.rel, link.rel))):
            rows[me.asn].append({
                "link": link.id, "router": me.router, "neighbor_as": other.asn, "neighbor_router": other.router,
                "neighbor_is": NEIGHBOR_IS.get(rel, rel), "ip": f"{me.ip}/{link.prefixlen}",
                "neighbor_ip": other.ip, "ip6": f"{me.ip6}/{link.prefixlen6}" if me.ip6 else None,
                "neighbor_ip6": other.ip6 or None, "ixp": None})
    for number, ixp in sorted(topo.ixps.items()):
        for m in ixp.members:
            rows.setdefault(m.asn, []).append({
                "link": None, "router": m.router, "neighbor_as": ixp.route_server_asn,
                "neighbor_router": f"route server of IXP {number}", "neighbor_is": "peer (IXP)",
                "ip": f"{m.ip}/{ixp.prefixlen}", "neighbor_ip": ixp.route_server_ip,
                "ip6": f"{m.ip6}/{ixp.prefixlen6}" if m.ip6 and ixp.prefixlen6 else None,
                "neighbor_ip6": ixp.route_server_ip6, "ixp": number,
                "ixp_members": sorted(x.asn for x in ixp.members if x.asn != m.asn)})
    return rows


def compact_matrix(record: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The controller's matrix record as a grid the page draws at once: rows by source AS, each
    cell the round trip in ms (rounded), false for a pair that failed, null for one not measured."""
    if not isinstance(record, dict) or not isinstance(record.get("pairs"), list):
        return None
    pairs = {}
    for p in record["pairs"]:
        try:
            pairs[(int(p["src"]), int(p["dst"]))] = (round(float(p.get("rtt_ms") or 0.0), 1)
                                                    if p.get("ok") else False)
        except (KeyError, TypeError, ValueError):
            continue
    asns = record.get("asns") or sorted({s for s, _ in pairs} | {d for _, d in pairs})
    asns = [int(a) for a in asns]
    grid = [[pairs.get((s, d)) for d in asns] for s in asns]
    return {"asns": asns, "grid": grid, "ok": record.get("ok"), "total": record.get("total"),
            "family": record.get("family", 4), "at": record.get("at") or record.get("received")}


def known_names(topo) -> Dict[str, str]:
    """Names the measure form takes besides addresses, lower case -> IPv4 address: a router's id
    (`3.c1`) or DNS name (`c1.group3`): its loopback; its host (`3.c1.host`, `host.c1.group3`)."""
    from ..topology.addressing import topology_addressing
    out: Dict[str, str] = {}
    try:
        plan = topology_addressing(topo)
    except Exception:                    # an unaddressable topology never gets this far; stay up
        return out
    for asn, addressing in plan.items():
        for name, r in addressing.routers.items():
            low = name.lower()
            out[f"{asn}.{low}"] = out[f"{low}.group{asn}"] = r.loopback
            out[f"{asn}.{low}.host"] = out[f"host.{low}.group{asn}"] = r.host_ip
    return out


def check_destination(dest: Any, names: Dict[str, str]) -> str:
    """An IP address (canonical) or the address of a known name; MeasureError otherwise."""
    if not isinstance(dest, str) or not dest.strip():
        raise MeasureError("destination: empty")
    dest = dest.strip()
    if len(dest) > 100:
        raise MeasureError("destination: longer than 100 characters")
    addr = address_or_none(dest)
    if addr is not None:
        return str(addr)
    got = names.get(dest.lower().rstrip("."))
    if got is None:
        shown = dest if len(dest) <= 40 else dest[:37] + "..."
        raise MeasureError(f"destination {shown!r}: not an IP address or a known name "
                           "(a router `3.C1`, a host `3.C1.host`, or their DNS names `c1.group3`, `host.c1.group3`)")
    return got


# ---- throttles and sessions -----------------------------------------------------------------------

class Buckets:
    """A token bucket per key: `take(key)` is None when allowed, else the seconds to wait."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10000):
        self.rate, self.burst, self.clock, self.max_keys = per_minute / 60.0, float(burst), clock, max_keys
        self._b: "OrderedDict[str, Tuple[float, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._b.get(key, (self.burst, now))
        return min(self.burst, level + (now - at) * self.rate)

    def take(self, key: str) -> Optional[float]:
        with self._lock:
            now = self.clock()
            level = self._level(key, now)
            if level < 1.0:
                self._b[key] = (level, now)
                return (1.0 - level) / self.rate
            self._b[key] = (level - 1.0, now)
            self._b.move_to_end(key)
            while len(self._b) > self.max_keys:
                self._b.popitem(last=False)
            return None

    def empty(self, key: str) -> Optional[float]:
        """Like take, without taking: the wait while the bucket is empty."""
        with self._lock:
            now = self.clock()
            level = self._level(key, now)
            return None if level >= 1.0 else (1.0 - level) / self.rate


@dataclass
class Session:
    user: str
    asn: int
    expires: float


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._s: "OrderedDict[str, Session]" = OrderedDict()
        self._lock = threading.Lock()

    def new(self, user: str, asn: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._s[token] = Session(user, asn, self.clock() + SESSION_TTL)
            while len(self._s) > MAX_SESSIONS:
                self._s.popitem(last=False)
        return token

    def get(self, token: Optional[str]) -> Optional[Session]:
        if not token:
            return None
        with self._lock:
            s = self._s.get(token)
            if s is not None and s.expires < self.clock():
                del self._s[token]
                s = None
            return s

    def drop(self, token: Optional[str]) -> None:
        with self._lock:
            self._s.pop(token or "", None)

    def drop_user(self, user: str) -> None:
        with self._lock:
            for t in [t for t, s in self._s.items() if s.user == user]:
                del self._s[t]


def password_checker(users: Callable[[], Dict[str, Tuple[int, str]]]) -> Callable[[str, str], Optional[int]]:
    """check(user, password) -> the group's ASN, or None; `users()` gives {user: (asn, password)}
    at each call (a rotated password takes effect at the next login). Constant-time compare."""
    def check(user: str, password: str) -> Optional[int]:
        want = users().get(user)
        dummy = "x" * 16
        ok = hmac.compare_digest((want[1] if want else dummy).encode(), password.encode())
        return want[0] if (want and ok) else None
    return check


# ---- the WSGI app -------------------------------------------------------------------------------------

Runner = Callable[..., Tuple[int, str]]


class StudentsPage:
    """access: "groups" (log in with the group's door credentials) or "public" (no login).

    check_password(user, password) -> ASN or None; matrix() -> the controller's latest matrix record
    or None; run_lg(router, command) -> (rc, output); run_measure(asn, tool, dest) -> (rc, output).
    """

    def __init__(self, topo, access: str, check_password: Callable[[str, str], Optional[int]],
                 matrix: Callable[[], Optional[Dict[str, Any]]], run_lg: Runner, run_measure: Runner,
                 clock: Callable[[], float] = time.monotonic):
        if access not in ("groups", "public"):
            raise ValueError(f"access {access!r}: groups or public")
        self.topo, self.access = topo, access
        self.check_password, self.matrix, self.run_lg, self.run_measure = check_password, matrix, run_lg, run_measure
        self.sessions = Sessions()
        self.runs = Buckets(RUN_PER_MINUTE, RUN_BURST, clock)
        self.login_fail = Buckets(LOGIN_PER_MINUTE, LOGIN_BURST, clock)
        self.mint = Buckets(MINT_PER_MINUTE, MINT_BURST, clock)
        self._client_key = secrets.token_bytes(32)
        self.running = threading.BoundedSemaphore(MAX_RUNNING)
        self.names = known_names(topo)
        self._connections = json.dumps({"ases": [
            {"asn": asn, "server": topo.ases[asn].server, "configure": topo.ases[asn].configure,
             "routers": list(topo.ases[asn].routers), "connections": rows}
            for asn, rows in connections(topo).items()]}).encode()

    # -- plumbing --
    def __call__(self, environ, start_response):
        try:
            status, ctype, body, extra = self.route(environ)
        except HttpError as exc:
            status, ctype, extra = exc.status, "application/json", exc.headers
            body = (json.dumps({"error": exc.message}) + "\n").encode()
        reason = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
                  503: "Service Unavailable"}.get(status, "Error")
        start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body)))]
                       + HEADERS + extra)
        return [body]

    @staticmethod
    def _json(obj: Any, extra: Optional[List[Tuple[str, str]]] = None):
        return 200, "application/json", (json.dumps(obj) + "\n").encode(), extra or []

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HttpError(405, f"method {method} not allowed here (use {', '.join(allowed)})",
                            [("Allow", ", ".join(allowed))])

    @staticmethod
    def _body(environ) -> Dict[str, Any]:
        # JSON only: a cross-site form cannot send it without a CORS preflight we never answer
        if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
            raise HttpError(400, "send JSON (Content-Type: application/json)")
        raw = environ.get("CONTENT_LENGTH") or "0"
        length = int(raw) if raw.isdigit() else -1
        if not 0 < length <= MAX_BODY:
            raise HttpError(400 if length <= 0 else 413, f"a JSON body of 1 to {MAX_BODY} bytes is needed")
        try:
            body = json.loads(environ["wsgi.input"].read(length).decode())
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "the body is not JSON")
        if not isinstance(body, dict):
            raise HttpError(400, "send a JSON object")
        return body

    @staticmethod
    def _token(environ) -> Optional[str]:
        try:
            c = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return None
        return c[COOKIE].value if COOKIE in c else None

    def who(self, environ) -> Optional[Session]:
        return self.sessions.get(self._token(environ))

    def _sign(self, ident: str) -> str:
        return hmac.new(self._client_key, ident.encode(), "sha256").hexdigest()[:32]

    def client(self, environ) -> Optional[str]:
        """The public page's client id of this browser (its signed cookie), or None."""
        try:
            c = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return None
        ident, _, sig = (c[CLIENT_COOKIE].value if CLIENT_COOKIE in c else "").partition(".")
        if len(ident) == 24 and hmac.compare_digest(sig, self._sign(ident)):
            return ident
        return None

    def _client_cookie(self, environ) -> List[Tuple[str, str]]:
        """A new client cookie for a public page's browser that has none (at most MINT_BURST per
        address, refilled at MINT_PER_MINUTE: dropping it does not buy fresh buckets for long)."""
        if self.access != "public" or self.client(environ) is not None:
            return []
        if self.mint.take("addr:" + environ.get("REMOTE_ADDR", "?")) is not None:
            return []
        ident = secrets.token_hex(12)
        return [("Set-Cookie", f"{CLIENT_COOKIE}={ident}.{self._sign(ident)}; Path=/; HttpOnly; SameSite=Strict")]

    def _need(self, environ) -> str:
        """The client key for throttles; 401 on a groups page without a session."""
        if self.access == "public":
            ident = self.client(environ)
            return "client:" + ident if ident else "addr:" + environ.get("REMOTE_ADDR", "?")
        s = self.who(environ)
        if s is None:
            raise HttpError(401, "log in with your group's user and password")
        return "user:" + s.user

    # -- routes --
    def route(self, environ) -> Tuple[int, str, bytes, List[Tuple[str, str]]]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        if path in ASSETS:
            self._allow(method, "GET", "HEAD")
            name, ctype = ASSETS[path]
            with open(os.path.join(STATIC, name), "rb") as fh:
                return 200, ctype, fh.read(), self._client_cookie(environ) if path == "/" else []
        if path == "/favicon.ico":
            return 204, "text/plain", b"", []
        if path == "/api/info":
            self._allow(method, "GET")
            return self._json(self.info(environ), self._client_cookie(environ))
        if path == "/api/login":
            self._allow(method, "POST")
            return self.login(environ)
        if path == "/api/logout":
            self._allow(method, "POST")
            self.sessions.drop(self._token(environ))
            return self._json({"ok": True}, [("Set-Cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")])
        if path == "/api/matrix":
            self._allow(method, "GET")
            self._need(environ)
            return self._json({"matrix": compact_matrix(self.matrix())})
        if path == "/api/connections":
            self._allow(method, "GET")
            self._need(environ)
            return 200, "application/json", self._connections, []
        if path == "/api/lg":
            self._allow(method, "POST")
            return self.lg(environ)
        if path == "/api/measure":
            self._allow(method, "POST")
            return self.measure(environ)
        raise HttpError(404, f"no such page: {path[:80]}")

    def info(self, environ) -> Dict[str, Any]:
        s = self.who(environ)
        out: Dict[str, Any] = {"name": self.topo.name, "access": self.access,
                               "me": {"user": s.user, "asn": s.asn} if s else None}
        if self.access == "public" or s is not None:
            out.update(routers=list(self.topo.routers), ases=sorted(self.topo.ases),
                       lg_forms=lg.allowed_forms(), tools=list(TOOLS),
                       limits={"per_minute": RUN_PER_MINUTE, "burst": RUN_BURST})
        return out

    def login(self, environ):
        if self.access == "public":
            raise HttpError(400, "this page is public: no login")
        body = self._body(environ)
        user, password = body.get("user"), body.get("password")
        if not (isinstance(user, str) and isinstance(password, str)) or len(user) > 64 or len(password) > 256:
            raise HttpError(400, 'send {"user": "...", "password": "..."}')
        addr = "addr:" + environ.get("REMOTE_ADDR", "?")
        wait = self.login_fail.empty(addr) or self.login_fail.empty("user:" + user)
        if wait:
            raise HttpError(429, f"too many failed logins: try again in {wait:.0f} s",
                            [("Retry-After", str(int(wait) + 1))])
        asn = self.check_password(user, password)
        if asn is None:
            self.login_fail.take(addr)
            self.login_fail.take("user:" + user)
            raise HttpError(403, "wrong user or password")
        token = self.sessions.new(user, asn)
        return self._json({"user": user, "asn": asn},
                          [("Set-Cookie", f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")])

    def _run(self, key: str, func: Callable[[], Tuple[int, str]]) -> Tuple[int, str]:
        wait = self.runs.take(key)
        if wait is not None:
            raise HttpError(429, f"slow down: at most {RUN_PER_MINUTE:g} runs a minute "
                                 f"(next in {wait:.0f} s)", [("Retry-After", str(int(wait) + 1))])
        if not self.running.acquire(blocking=False):
            raise HttpError(503, "the page is busy with other groups' commands: try again in a few seconds",
                            [("Retry-After", "3")])
        try:
            rc, out = func()
        finally:
            self.running.release()
        if len(out) > MAX_OUTPUT:
            out = out[:MAX_OUTPUT] + f"\n[... cut at {MAX_OUTPUT} bytes]\n"
        return rc, out

    def lg(self, environ):
        key = self._need(environ)
        body = self._body(environ)
        router, command = body.get("router"), body.get("command")
        if not isinstance(router, str) or router not in self.topo.routers:
            raise HttpError(400, f"router: not a router of {self.topo.name} (`<asn>.<NAME>`)")
        try:
            words = lg.check_command(command if isinstance(command, str) else "")
        except lg.Refused as exc:
            raise HttpError(400, f"refused: {exc}")
        command = " ".join(words)
        rc, out = self._run(key, lambda: self.run_lg(router, command))
        return self._json({"router": router, "command": command, "rc": rc, "output": out})

    def measure(self, environ):
        key = self._need(environ)
        body = self._body(environ)
        tool, src = body.get("tool"), body.get("from")
        if tool not in TOOLS:
            raise HttpError(400, f"tool: one of {', '.join(TOOLS)}")
        if isinstance(src, str) and src.isdigit() and len(src) <= 10:
            src = int(src)
        if not isinstance(src, int) or isinstance(src, bool) or src not in self.topo.ases:
            raise HttpError(400, f"from: an AS of {self.topo.name}")
        try:
            dest = check_destination(body.get("dest"), self.names)
        except MeasureError as exc:
            raise HttpError(400, f"refused: {exc}")
        rc, out = self._run(key, lambda: self.run_measure(src, tool, dest))
        return self._json({"tool": tool, "from": src, "dest": dest, "rc": rc, "output": out})
