"""The students' page's server process (started by `lab up`, classroom/page_server.py):

    python -m minet_sdn.cli.page --topology FILE --port PORT [--access groups|public]

Wires the lab into the page's app (page.py): the groups' passwords (the class credentials, read
at each login), the controller's latest matrix, the looking glass and the measure form at the
lab's node places. Serves it with the controller's hardened HTTP server (rest/server.py) on
loopback only.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, Optional, Tuple

from .page import StudentsPage, password_checker
from .page_server import group_users

MATRIX_TTL = 3.0           # seconds a matrix read from the controller is reused


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


if __name__ == "__main__":      # `python -m minet_sdn.classroom.page_main`: its parser is in cli/page.py
    import runpy
    runpy.run_module("minet_sdn.cli.page", run_name="__main__")
