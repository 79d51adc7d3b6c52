"""The status page, served by the controller on its REST listener (loopback by default).

The controller does not know this page: `minet controller` installs a StatusPage into the REST
app's extension point (rest/page.py), with where the routers' FRR directories are (the
provisioning state root, or one per server) and how the nodes were made (the backend).

  GET  /ui                        the page (static/status.html: polls the JSON below every second)
  GET  /v1/watch/status           servers, remote bridges, links (state, counters), BGP sessions
                                  per AS, the latest connectivity matrix, looking-glass routers
  GET  /v1/watch/graph.svg        the topology picture with the links' current states
  GET  /v1/watch/matrix           the latest matrix (`minet matrix` sends each round here)
  POST /v1/watch/matrix           store a round (JSON: the `--json` object, optionally asns/at/name)
  POST /v1/watch/lg               {"router": "1.ZURI", "command": "show bgp summary"} -> output;
                                  400 for anything off the looking glass's allow-list

Fail / restore from the page go to the existing POST /v1/links/<id>/fail|restore. BGP session
counts are read from the routers (vtysh at their places, topology/places.py: the controller's own
machine's routers on a real server, every router in the lab) by a background thread that runs
only while someone is looking at the page, every BGP_INTERVAL seconds.

`service` is the controller app (`topo`, `links()`, `switches()`, `health()`); per-service state
lives in a WatchState attached to it.
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

from ..rest.api import ApiError, _allow
from ..topology import Topology
from ..topology.places import Places, Root, build_places
from . import graph, lg, nodes
from .matrix import Matrix

PREFIXES = ("/ui", "/v1/watch")
BGP_INTERVAL = 5.0
VIEWER_IDLE = 30.0          # stop reading BGP this long after the last page poll
MAX_BODY = 4 << 20
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
SERVER = "{server}"        # in a state root given as text: each server's name (the lab's roots)


def handles(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


def root_of(text: str) -> Root:
    """A state root given on the command line: one directory, or a pattern with {server}."""
    return (lambda server: text.replace(SERVER, server)) if SERVER in text else text


class StatusPage:
    """The page as the REST app's extension point takes it (rest/page.py): `handles`, `route`;
    nodes' places are built from the controller's topology (reloads included) with `root` and
    `backend`, once per topology."""

    def __init__(self, root: Root, backend: str = "netns"):
        self.root, self.backend = root, backend
        self._places: Optional[Places] = None

    def places(self, topo: Topology) -> Places:
        got = self._places
        if got is None or got.topo is not topo:
            got = self._places = build_places(topo, self.root, self.backend)
        return got

    handles = staticmethod(handles)

    def route(self, service, method: str, path: str, environ) -> Tuple[int, str, bytes]:
        return route(service, method, path, environ, self)


def bgp_counts(text: Optional[str], ignore_as=()) -> Optional[Tuple[int, int]]:
    """(established, sessions) from `show bgp summary json`, peers counted once over all families;
    sessions towards an AS of `ignore_as` (unconfigured ASes: students' routers) are not counted."""
    if text is None:
        return None
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return None
    peers: Dict[str, str] = {}
    for afi in (data.values() if isinstance(data, dict) else ()):
        if isinstance(afi, dict):
            for peer, info in (afi.get("peers") or {}).items():
                if isinstance(info, dict) and info.get("remoteAs") not in ignore_as:
                    peers[peer] = str(info.get("state", "?"))
    return sum(1 for s in peers.values() if s == "Established"), len(peers)


class WatchState:
    def __init__(self):
        self.lock = threading.Lock()
        self.matrix: Optional[Dict[str, Any]] = None
        self.bgp: Dict[str, Any] = {"at": None, "ases": []}
        self.last_view = 0.0
        self.thread: Optional[threading.Thread] = None
        self.graph_cache: Tuple[Optional[tuple], bytes] = (None, b"")

    # -- BGP, read while the page is watched --
    def touch(self, service, places) -> None:
        with self.lock:
            self.last_view = time.monotonic()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._bgp_loop, args=(service, places), name="minet-watch-bgp",
                                               daemon=True)
                self.thread.start()

    def _bgp_loop(self, service, places) -> None:
        while time.monotonic() - self.last_view < VIEWER_IDLE:
            t0 = time.monotonic()
            try:
                result = read_bgp(places(service.topo))
            except Exception as exc:            # never let the reader die silently
                result = {"at": time.time(), "ases": [], "error": f"{type(exc).__name__}: {exc}"}
            with self.lock:
                self.bgp = result
            time.sleep(max(0.5, BGP_INTERVAL - (time.monotonic() - t0)))


def read_bgp(places: Places) -> Dict[str, Any]:
    """BGP sessions per AS of the configured routers (vtysh `show bgp summary json` at their places)."""
    topo = places.topo
    routers = [r for r, a in topo.routers.items() if a.configure]
    unconfigured = {asn for asn, a in topo.ases.items() if not a.configure}

    def one(router: str):
        try:
            rc, out, _ = nodes.run(nodes.vtysh_argv(places, router, "show bgp summary json"), timeout=10)
        except nodes.NodeError:
            return router, None
        return router, bgp_counts(out, unconfigured) if rc == 0 else None

    per_as: Dict[int, Dict[str, Any]] = {}
    for asn, as_ in sorted(topo.ases.items()):
        per_as[asn] = {"asn": asn, "server": as_.server, "configure": as_.configure, "routers": len(as_.routers),
                       "answered": 0, "established": 0, "sessions": 0}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for router, counts in pool.map(one, routers):
            if counts is None:
                continue
            row = per_as[int(router.split(".", 1)[0])]
            row["answered"] += 1
            row["established"] += counts[0]
            row["sessions"] += counts[1]
    return {"at": time.time(), "ases": list(per_as.values())}


def _state(service) -> WatchState:
    st = getattr(service, "_minet_watch", None)
    if st is None:
        st = WatchState()
        try:
            setattr(service, "_minet_watch", st)
        except AttributeError:
            pass
    return st


def _json(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _body(environ) -> Any:
    ctype = environ.get("CONTENT_TYPE", "")
    if not ctype.startswith("application/json"):        # also keeps cross-site form posts out
        raise ApiError(400, "send JSON (Content-Type: application/json)")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0 or length > MAX_BODY:
        raise ApiError(400, f"a JSON body of 1 byte to {MAX_BODY} bytes is needed")
    try:
        return json.loads(environ["wsgi.input"].read(length).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not JSON: {exc}")


def route(service, method: str, path: str, environ, page: StatusPage) -> Tuple[int, str, bytes]:
    st = _state(service)
    if path == "/ui":
        _allow(method, "GET")
        with open(os.path.join(STATIC, "status.html"), "rb") as fh:
            return 200, "text/html; charset=utf-8", fh.read()
    if path == "/v1/watch/status":
        _allow(method, "GET")
        st.touch(service, page.places)
        return 200, "application/json", _json(status(service, st))
    if path == "/v1/watch/graph.svg":
        _allow(method, "GET")
        return 200, "image/svg+xml", graph_svg(service, st)
    if path == "/v1/watch/matrix":
        if method == "POST":
            body = _body(environ)
            try:
                m = Matrix.from_json(body)
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, f"not a matrix: {exc}")
            rec = m.to_record()
            rec["received"] = time.time()
            with st.lock:
                st.matrix = rec
            return 200, "application/json", _json({"stored": True, "ok": rec["ok"], "total": rec["total"]})
        _allow(method, "GET")
        return 200, "application/json", _json({"matrix": st.matrix})
    if path == "/v1/watch/lg":
        _allow(method, "POST")
        body = _body(environ)
        if not isinstance(body, dict):
            raise ApiError(400, 'send {"router": "<asn>.<NAME>", "command": "show ..."}')
        router, command = str(body.get("router", "")), str(body.get("command", ""))
        try:
            lg.check_command(command)
            rc, out = lg.run_lg(page.places(service.topo), router, command)
        except lg.Refused as exc:
            raise ApiError(400, f"refused: {exc}")
        except nodes.NodeError as exc:
            raise ApiError(404, str(exc))
        return 200, "application/json", _json({"router": router, "command": command, "rc": rc, "output": out})
    raise ApiError(404, f"no such resource: {path}")


def status(service, st: WatchState) -> Dict[str, Any]:
    topo = service.topo
    links = service.links()
    switches = service.switches()
    servers = []
    for name, srv in topo.servers.items():
        mine = [s for s in switches if s["server"] == name]
        servers.append({"name": name, "underlay_ip": srv.underlay_ip,
                        "ases": sorted(a for a, as_ in topo.ases.items() if as_.server == name),
                        "routers": sum(len(as_.routers) for as_ in topo.ases.values() if as_.server == name),
                        "bridges": len(mine), "connected": sum(1 for s in mine if s["connected"]),
                        "synced": sum(1 for s in mine if s["synced"]),
                        "tunnels_live": sum(1 for s in mine if s["tunnel_live"])})
    with st.lock:
        matrix, bgp = st.matrix, dict(st.bgp)
    return {"name": topo.name, "time": time.time(), "health": service.health(), "servers": servers,
            "switches": switches, "links": links, "bgp": bgp, "matrix": matrix,
            "lg": {"routers": list(topo.routers), "allowed": ["show " + " ".join(f) for f in lg.ALLOWED]}}


def graph_svg(service, st: WatchState) -> bytes:
    topo = service.topo
    states = {l["id"]: l["state"] for l in service.links()}
    key = (id(topo), tuple(sorted(states.items())))
    with st.lock:
        if st.graph_cache[0] == key:
            return st.graph_cache[1]
    svg = graph.render(topo, "svg", states=states)
    with st.lock:
        st.graph_cache = (key, svg)
    return svg
