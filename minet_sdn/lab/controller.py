"""The lab's controller and how this host reaches its REST API.

The controller runs in the mgmt namespace and listens on the mgmt network, where the emulated
servers' bridges reach it. This host reaches its REST API two ways:
  rest_call   from Python (lab status, tests, benches): rest/client.py's request, its connection
              opened inside the mgmt namespace, needing nothing else to run;
  the relay   for every plain HTTP client (`minet link`, curl, a browser on /ui): a process
              listening on this host's loopback (relay.py), its URL in lab.json (`rest_base`).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional, Tuple

from ..rest import auth
from ..rest.auth import TOKEN_FILE, read_token
from ..rest.client import ControllerUnreachable, NotOurApi, request
from ..topology import Topology, names
from . import LabError, Progress, paths
from .effective import effective, load
from .state import ControllerRecord, LabState, ProcessRecord, require
from .system import console_argv, nsenter_argv, spawn_daemon, wait_tcp

START_TIMEOUT = 30.0


def start_controller(topo: Topology, state: LabState, progress: Progress, eff: Optional[Topology] = None) -> None:
    """The controller in the mgmt namespace (unless it runs), then the relay (unless it runs);
    `eff`: the lab's effective topology when the caller has it loaded."""
    eff = eff or effective(state)
    rec = state.process("controller")
    if rec is None or not rec.alive():
        log = paths.state_file(topo, "controller.log")
        argv = nsenter_argv(names.mgmt_ns(topo), console_argv("minet", "minet_sdn.cli.main") + [
            "controller", "--topology", state.effective_topology,
            "--state", paths.state_file(topo, "controller-state.json"),
            # the status page reads BGP from every emulated server's routers
            "--provision-root", paths.provision_state_dir(topo, "{server}"), "--backend", state.backend])
        rec = ProcessRecord.of("controller", spawn_daemon(argv, log, cwd=paths.state_dir(topo)), log=log)
        state.add_process(rec)
        ns, c = names.mgmt_ns(topo), eff.controller
        deadline = time.monotonic() + START_TIMEOUT
        while not (wait_tcp(ns, c.rest_host, c.rest_port, timeout=0.5)
                   and wait_tcp(ns, c.ofp_host, c.ofp_port, timeout=0.5)):
            if not rec.alive():
                raise LabError(f"the controller exited: {_last_log_line(log)} (log: {log})")
            if time.monotonic() > deadline:
                raise LabError(f"the controller does not listen on {c.rest_host}:{c.rest_port} "
                               f"after {START_TIMEOUT:g} s (log: {log})")
        progress(f"controller: pid {rec.pid} in {ns}, OpenFlow {c.ofp_host}:{c.ofp_port}, REST {c.rest_url}")
    state.controller = ControllerRecord(ofp=f"{eff.controller.ofp_host}:{eff.controller.ofp_port}",
                                        rest=eff.controller.rest_url, log=rec.log)
    state.save()
    start_relay(topo, state, eff)


def start_relay(topo: Topology, state: LabState, eff: Topology) -> None:
    """The relay on this host's loopback (a free port), forwarding into the mgmt namespace."""
    rec = state.process("relay")
    if rec is not None and rec.alive():
        return
    port_file = paths.state_file(topo, "relay.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    log = paths.state_file(topo, "relay.log")
    argv = [sys.executable, "-m", "minet_sdn.cli.relay", "--netns", names.mgmt_ns(topo),
            "--target", f"{eff.controller.rest_host}:{eff.controller.rest_port}", "--port-file", port_file]
    rec = ProcessRecord.of("relay", spawn_daemon(argv, log, cwd=paths.state_dir(topo)))
    state.add_process(rec)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if not rec.alive() or time.monotonic() > deadline:
            raise LabError(f"the REST relay did not start (log: {log})")
        time.sleep(0.05)
    with open(port_file) as fh:
        port = int(fh.read().strip())
    state.rest_relay = f"http://127.0.0.1:{port}"
    state.save()


def _last_log_line(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:
            lines = [line.strip() for line in fh.read().splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def rest_base(topo: Topology) -> Optional[str]:
    """Base URL of the lab's controller REST API from this host (the relay's), or None if no lab
    of `topo`'s instance runs one. LabError when its state is unreadable: the caller says so."""
    state = LabState.load(topo)
    if state is None:
        return None
    relay = state.process("relay")
    if relay is None or not state.rest_relay or not relay.alive():
        return None
    return state.rest_relay


def rest_call(topo_path: str, method: str, path: str, body: Any = None,
              timeout: float = 10.0) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON or text) of `METHOD PATH` on the lab's controller.

    Reaches the controller inside the lab's mgmt namespace from wherever the caller runs.
    Raises LabError when no lab of this topology exists or the controller does not answer.
    """
    topo = load(topo_path)
    return call_controller(topo, effective(require(topo, topo_path)), method, path, body, timeout)


def call_controller(topo: Topology, eff: Topology, method: str, path: str, body: Any = None,
                    timeout: float = 10.0) -> Tuple[int, Any]:
    """rest_call for a caller holding the lab's topology and its effective copy (Lab.rest_call):
    rest/client.py's request, from inside the lab's mgmt namespace, with the lab's token."""
    ns = names.mgmt_ns(topo)
    token = read_token(paths.state_file(topo, TOKEN_FILE))      # writes need it (rest/auth.py)
    try:
        return request(eff.controller.rest_url, method, path, body, token=token, timeout=timeout, netns=ns)
    except ControllerUnreachable as exc:
        reason = exc.reason
        raise LabError(f"cannot reach the lab's controller at {eff.controller.rest_url} "
                       f"(in {ns}): {getattr(reason, 'strerror', None) or reason}") from None
    except NotOurApi as exc:             # bad JSON where JSON was promised
        raise LabError(f"the lab's controller at {eff.controller.rest_url} (in {ns}): {exc}") from None


def token_path(topo) -> str:
    """Where a client finds the controller's REST token: the lab's copy when a lab of `topo` runs
    (rest/auth.py says the rest of the order)."""
    return auth.token_path(topo, paths.state_file(topo, TOKEN_FILE))


def token_for(topo) -> Optional[str]:
    return read_token(token_path(topo))
