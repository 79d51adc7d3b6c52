"""The students' page's server process, and how `lab up`/`lab down` start and stop it.

    python -m minet_sdn.classroom.page_server --topology FILE --port PORT [--access groups|public]

One process per lab, in this machine's root network namespace, listening on 127.0.0.1 only: the
routers', hosts' and switches' namespaces each have their own loopback, so nothing inside the
mini-Internet can reach it (the lab's e2e test checks). It runs as root because the looking glass
and the measure form enter the nodes' namespaces (vtysh, traceroute, ping: argv lists, never a
shell); it reads the groups' passwords from the class credentials (root-only) at each login, and
the latest matrix from the controller (GET /v1/watch/matrix: no token; the page never writes).

The HTTP server is the controller's hardened one (rest/server.py: Host check against DNS
rebinding, body limit, slow-client deadlines, connection caps).

    /run/minet-class/<instance>.page/      ($MINET_CLASS_RUN) 0700 root
        state.json   {"pid": ..., "start": ..., "port": ...}      page.log
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import host
from . import ClassError, credentials, doors
from .page import StudentsPage, password_checker

MATRIX_TTL = 3.0           # seconds a matrix read from the controller is reused
START_TIMEOUT = 15.0


def page_dir(instance: str) -> str:
    return os.path.join(doors.run_root(), f"{instance}.page")


def url(topo) -> Optional[str]:
    s = topo.classroom
    if s is None or s.page == "off":
        return None
    return f"http://127.0.0.1:{s.page_listen_port}/"


# ---- what the server wires into the app --------------------------------------------------------

def group_users(topo) -> Dict[str, Tuple[int, str]]:
    """{user: (asn, password)} of every group with a door (the same users and passwords)."""
    store = credentials.Store(topo.name)
    asns = topo.classroom.door_asns(topo.ases) if topo.classroom else []
    return {credentials.user_name(topo.tag, a): (a, store.passwords[a]) for a in asns if a in store.passwords}


class ControllerMatrix:
    """The controller's latest matrix, read at most every MATRIX_TTL seconds."""

    def __init__(self, lab):
        self.lab = lab
        self.lock = threading.Lock()
        self.at, self.value = 0.0, None

    def __call__(self) -> Optional[Dict[str, Any]]:
        with self.lock:
            if time.monotonic() - self.at < MATRIX_TTL:
                return self.value
            try:
                code, body = self.lab.rest_call("GET", "/v1/watch/matrix", timeout=5.0)
                self.value = body.get("matrix") if code == 200 and isinstance(body, dict) else None
            except Exception:           # no controller right now: the page says "no matrix yet"
                self.value = None
            self.at = time.monotonic()
            return self.value


def build_app(topo_path: str, access: str) -> StudentsPage:
    from ..lab.lab import Lab
    from ..watch import lg, measure
    lab = Lab(topo_path, progress=lambda _m: None)
    topo = lab.topo

    def places():
        return lab.places()

    def run_lg(router: str, command: str) -> Tuple[int, str]:
        return lg.run_lg(places(), router, command, timeout=15.0)

    def run_measure(asn: int, tool: str, dest: str) -> Tuple[int, str]:
        rc, out, err = measure.run_measure(places(), asn, tool, dest, count=3, max_hops=20, numeric=True,
                                           timeout=60.0)
        return rc, out + err

    return StudentsPage(topo, access, password_checker(lambda: group_users(topo)), ControllerMatrix(lab),
                        run_lg, run_measure)


def serve(topo_path: str, listen: str, port: int, access: str, ready_file: Optional[str]) -> None:
    from ..rest.server import serve_in_thread
    app = build_app(topo_path, access)
    server = serve_in_thread((listen, port), app)
    if ready_file:
        with open(ready_file + ".tmp", "w") as fh:
            fh.write(f"{server.server_address[1]}\n")
        os.replace(ready_file + ".tmp", ready_file)
    threading.Event().wait()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="minet-students-page")
    p.add_argument("--topology", required=True)
    p.add_argument("--listen", default="127.0.0.1", choices=["127.0.0.1", "::1"],
                   help="loopback only: the page is never served inside the mini-Internet")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--access", choices=["groups", "public"], default="groups")
    p.add_argument("--ready-file")
    args = p.parse_args(argv)
    try:
        serve(args.topology, args.listen, args.port, args.access, args.ready_file)
    except OSError as exc:
        print(f"minet students' page: cannot listen on {args.listen}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    return 0


# ---- up / down (called by the lab hook) -----------------------------------------------------------

def _state(d: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(d, "state.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _alive(rec: Optional[Dict[str, Any]]) -> bool:
    return bool(rec) and host.proc_starttime(rec["pid"]) == rec.get("start") and host.pid_alive(rec["pid"])


def up(topo, topo_file: str, progress=lambda _m: None) -> Optional[str]:
    """The page of `topo` running (kept if it runs with the same settings); its URL, or None.
    `topo_file`: a topology file of the running lab (the lab's effective copy)."""
    settings = topo.classroom
    if settings is None or settings.page == "off":
        down(topo.name)
        return None
    d = page_dir(topo.name)
    rec = _state(d)
    want = {"port": settings.page_listen_port, "access": settings.page, "topology": os.path.abspath(topo_file)}
    if _alive(rec) and all(rec.get(k) == v for k, v in want.items()):
        return url(topo)
    down(topo.name)
    if settings.page == "groups":          # the doors' passwords, made now if no door made them yet
        credentials.Store(topo.name).ensure(settings.door_asns(topo.ases))
    os.makedirs(d, mode=0o700, exist_ok=True)
    ready = os.path.join(d, "ready")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ready)
    log = open(os.path.join(d, "page.log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "minet_sdn.classroom.page_server", "--topology", want["topology"],
                             "--port", str(want["port"]), "--access", want["access"], "--ready-file", ready],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            close_fds=True, cwd="/")
    log.close()
    rec = dict(want, pid=proc.pid, start=host.proc_starttime(proc.pid))
    with open(os.path.join(d, "state.json"), "w") as fh:
        json.dump(rec, fh)
    deadline = time.monotonic() + START_TIMEOUT
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            down(topo.name)
            raise ClassError(f"the students' page did not start on 127.0.0.1:{want['port']}: "
                             f"{_last_line(os.path.join(d, 'page.log'))} (class.page_port sets the port)")
        time.sleep(0.05)
    proc.returncode = 0          # a daemon from now on: reaped by pid in down()
    users = len(group_users(topo)) if settings.page == "groups" else 0
    progress(f"students' page: {url(topo)} ("
             + (f"log in as a group: {users} group users" if settings.page == "groups" else "public, no login") + ")")
    return url(topo)


def down(instance: str) -> List[str]:
    """Stop the page of `instance` (if ours runs) and remove its directory; the problems met."""
    d = page_dir(instance)
    rec = _state(d)
    if _alive(rec):
        host.stop_processes([rec["pid"]], 5.0, alive=lambda _pid: _alive(rec))
        if _alive(rec):
            return [f"the students' page (pid {rec['pid']}) did not stop"]
    if os.path.isdir(d):
        shutil.rmtree(d, ignore_errors=True)
    return []


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:
            lines = [x.strip() for x in fh if x.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no log)"


if __name__ == "__main__":
    raise SystemExit(main())
