"""How `lab up`/`lab down` start and stop the students' page's server process (page_main.py:

    python -m minet_sdn.cli.page --topology FILE --port PORT [--access groups|public]

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

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import host
from . import ClassError, credentials, doors

START_TIMEOUT = 15.0


def page_dir(instance: str) -> str:
    return os.path.join(doors.run_root(), f"{instance}.page")


def url(topo) -> Optional[str]:
    s = topo.classroom
    if s is None or s.page == "off":
        return None
    return f"http://127.0.0.1:{s.page_listen_port}/"


def group_users(topo) -> Dict[str, Tuple[int, str]]:
    """{user: (asn, password)} of every group with a door (the same users and passwords)."""
    store = credentials.Store(topo.name)
    asns = topo.classroom.door_asns(topo.ases) if topo.classroom else []
    return {credentials.user_name(topo.tag, a): (a, store.passwords[a]) for a in asns if a in store.passwords}


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
    proc = subprocess.Popen([sys.executable, "-m", "minet_sdn.cli.page", "--topology", want["topology"],
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

