"""The embedded multi-server lab: `lab up`, `lab down`, `lab status`, `exec`, and REST access.

lab_up(FILE)     emulated servers (see emulation.py), the controller in the mgmt namespace, then
                 `minet-provision --master` over SSH from the mgmt namespace (the real master
                 path), then wait until every BGP session of every configured router is up.
                 backend="docker" (`lab up --backend docker [--image IMG]`) makes the nodes
                 containers: it is recorded in lab.json and passed to every minet-provision.
lab_down(FILE)   provisioning --down over SSH (best effort), then remove exactly what lab.json lists.
lab_status(FILE) nodes, addresses, links (from the controller) and BGP sessions.
exec_in_node(FILE, NODE, ARGV)   a command in a node: `mgmt`, `underlay`, a server, or a router.
rest_call(FILE, METHOD, PATH)    the controller's REST API, reached inside the mgmt namespace.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..messages import clip_line
from ..rest.client import CSRF_HEADER, CSRF_VALUE
from ..topology import Topology, names, validate
from . import emulation as em
from .emulation import LabError, LabState, Progress

BGP_TIMEOUT = 180.0


def default_bgp_timeout(topo: Topology) -> float:
    """How long `lab up` waits for convergence by default: 180 s plus 0.5 s per router."""
    return BGP_TIMEOUT + 0.5 * len(topo.routers)
PROVISION_TIMEOUT = 600.0


# ---- small helpers --------------------------------------------------------------------------

def printing_progress(stream=None) -> Progress:
    """A progress callback printing `[  1.2s] message` lines."""
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        out = stream or sys.stdout
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=out, flush=True)
    return progress


def _console(name: str, module: str) -> List[str]:
    """argv running console script `name` with this very Python (found next to it, else -c)."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(script):
        return [sys.executable, script]
    return [sys.executable, "-c",
            f"import sys; sys.argv[0] = {name!r}; from {module} import main; sys.exit(main())"]


def load(topo_path: str) -> Topology:
    return em._load(topo_path)


def _state(topo: Topology, topo_path: str) -> LabState:
    state = LabState.load(topo)
    if state is None:
        raise LabError(f"no lab of {topo_path} is up (start it with `minet lab up {topo_path}`)")
    return state


def lab_exists(topo_path: str) -> bool:
    """True when lab state exists for this topology (its name) on this machine."""
    try:
        topo = load(topo_path)
    except LabError:
        return False
    return os.path.exists(em.lab_json_path(topo))


# ---- routers as provisioning names them -----------------------------------------------------

@dataclass(frozen=True)
class RouterPlace:
    router: str          # node id: "<asn>.<NAME>" (a router) or "<asn>.<NAME>.host" (its host)
    server: str
    netns: str           # the node's network namespace (netns backend) or container name (docker)
    vty_dir: str         # FRR's --vty_socket directory (routers only)
    backend: str = "netns"

    def exec_prefix(self) -> List[str]:
        """argv prefix running a command in the node (vtysh of a container is the container's)."""
        return names.exec_prefix(self.backend, self.netns)

    def vtysh_argv(self, *commands: str) -> List[str]:
        """vtysh -c COMMAND... on this router: the host's vtysh on the router's sockets (netns), the
        container's on docker (the router's FRR directory is at the same path inside it)."""
        prefix = self.exec_prefix() if self.backend == "docker" else []
        return prefix + names.vtysh_argv(self.vty_dir, *commands)


_PLAN_CACHE: Dict[Tuple[int, str], Tuple[Topology, Dict[str, Tuple[str, Optional[str]]]]] = {}


def _plan_nodes(topo: Topology, server: str) -> Dict[str, Tuple[str, Optional[str]]]:
    """{node id: (namespace, FRR confdir or None)} of `server`, as provisioning plans them."""
    cached = _PLAN_CACHE.get((id(topo), server))
    if cached is not None and cached[0] is topo:
        return cached[1]
    if len(_PLAN_CACHE) > 64:
        _PLAN_CACHE.clear()
    result = _plan_nodes_uncached(topo, server)
    _PLAN_CACHE[(id(topo), server)] = (topo, result)
    return result


def _plan_nodes_uncached(topo: Topology, server: str) -> Dict[str, Tuple[str, Optional[str]]]:
    sdir = names.provision_state_dir(em.provision_state_dir(topo, server), topo, server)
    return names.server_nodes(topo, server, sdir)


def lab_backend(topo: Topology) -> str:
    """How the lab's nodes are made ("netns" or "docker"), as `lab up` recorded it."""
    try:
        state = LabState.load(topo)
    except LabError:
        state = None
    return state.backend if state is not None else "netns"


def _backend_args(state: LabState) -> List[str]:
    """minet-provision options selecting the lab's backend (none for the default netns)."""
    backend = state.backend
    if backend == "netns":
        return []
    image = state.image
    return ["--backend", backend] + (["--image", str(image)] if image else [])


def node_place(topo: Topology, node: str) -> Optional[RouterPlace]:
    """Where provisioning puts node `node` (router or host) of the lab, or None if no such node."""
    router = node[:-len(".host")] if node.endswith(".host") else node
    if router not in topo.routers:
        return None
    server = topo.server_of(router)
    ns, confdir = _plan_nodes(topo, server).get(node, (None, None))
    if ns is None:
        return None
    return RouterPlace(router=node, server=server, netns=ns, vty_dir=confdir or "", backend=lab_backend(topo))


def router_place(topo: Topology, router: str) -> RouterPlace:
    """Where provisioning puts `router` on a lab server: its namespace and vtysh socket directory."""
    place = node_place(topo, router)
    if place is None:
        raise LabError(f"no router {router} in {topo.name}")
    return place


def configured_routers(topo: Topology) -> List[str]:
    return [r for r, as_ in topo.routers.items() if as_.configure]


# ---- BGP ------------------------------------------------------------------------------------

# The commands the lab polls, each answered by one daemon: asked over that daemon's own vty socket
# (<vty_dir>/<daemon>.vty, the protocol vtysh itself speaks: the command and a NUL; the output, then
# three NULs and the command's status), the answer is the same text without starting vtysh, which
# loads every daemon's command tree: 0.6 ms instead of about 30 ms (25 ms of CPU) per call. At 60 x 8
# a second `lab up` is one such call per configured router (464).
VTY_DAEMON = {"show bgp summary json": "bgpd", "show ip route json": "zebra", "show ipv6 route json": "zebra"}


def vty_direct(path: str, command: str, timeout: float = 10) -> Optional[str]:
    """`command`'s output from the FRR daemon listening on the vty socket `path`; None if it cannot
    be asked or the command failed (status not 0)."""
    import socket
    deadline = time.monotonic() + timeout
    chunks: List[bytes] = []
    tail = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode() + b"\0")
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    return None               # closed before the end marker
                chunks.append(data)
                tail = (tail + data)[-4:]
                if len(tail) == 4 and tail[:3] == b"\0\0\0":
                    break
    except OSError:                           # includes socket.timeout
        return None
    raw = b"".join(chunks)
    if raw[-1] != 0:
        return None
    return raw[:-4].decode(errors="replace")


def vtysh(place: RouterPlace, command: str, timeout: float = 10) -> Optional[str]:
    daemon = VTY_DAEMON.get(command) if place.backend != "docker" else None
    if daemon is not None:
        text = vty_direct(os.path.join(place.vty_dir, f"{daemon}.vty"), command, timeout)
        if text is not None:
            return text
    try:
        proc = subprocess.run(place.vtysh_argv(command),
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def bgp_sessions(topo: Topology, router: str) -> Dict[str, Any]:
    """{"router", "reachable", "sessions": [{"peer", "remote_as", "state", "expected"}], "missing"}."""
    place = router_place(topo, router)
    text = vtysh(place, "show bgp summary json")
    unconfigured = {asn for asn, a in topo.ases.items() if not a.configure}
    result: Dict[str, Any] = {"router": router, "server": place.server, "reachable": text is not None,
                              "sessions": [], "missing": []}
    data: Dict[str, Any] = {}
    if text is not None:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            result["reachable"] = False
    seen: Dict[str, Dict[str, Any]] = {}
    for family, afi in (data.items() if isinstance(data, dict) else ()):
        if not isinstance(afi, dict):
            continue
        for peer, info in (afi.get("peers") or {}).items():
            remote_as = info.get("remoteAs")
            seen[peer] = {"peer": peer, "remote_as": remote_as, "state": info.get("state", "?"),
                          "expected": remote_as not in unconfigured,
                          "afi": "ipv6" if ":" in peer else "ipv4", "family": family}
    result["sessions"] = sorted(seen.values(), key=lambda s: s["peer"])
    # every link towards a configured AS needs a session in each family (fabric.ipv6: dual stack)
    for link in topo.links:
        for me, far in ((link.a, link.b), (link.b, link.a)):
            if me.router == router and far.asn not in unconfigured:
                wanted = (far.ip, far.ip6) if topo.fabric.ipv6 else (far.ip,)
                result["missing"].extend(ip for ip in wanted if ip not in seen)
    return result


def bgp_converged(report: Dict[str, Any]) -> bool:
    return (report["reachable"] and not report["missing"]
            and all(s["state"] == "Established" for s in report["sessions"] if s["expected"]))


def routes_missing(topo: Topology, router: str) -> Optional[List[int]]:
    """The configured ASes (other than its own) whose prefix `router` has no route to, in IPv4 or
    (when fabric.ipv6) in IPv6; None if vtysh did not answer. The IPv6 table is read only once
    the IPv4 one is complete (one vtysh call per poll while routes are still spreading)."""
    from ..topology.addressing import topology_addressing, topology_addressing6
    place = router_place(topo, router)

    def table(command: str) -> Optional[Dict[str, Any]]:
        text = vtysh(place, command, timeout=20)
        try:
            got = json.loads(text) if text else None
        except ValueError:
            got = None
        return got if isinstance(got, dict) else None

    own = topo.routers[router].asn
    others = [asn for asn, as_ in topo.ases.items()          # (announce_to: a route may be withheld)
              if as_.configure and asn != own and asn not in topo.restricted_exporters]
    v4 = table("show ip route json")
    if v4 is None:
        return None
    addressing = _addressing(topo, topology_addressing)
    missing = [asn for asn in others if addressing[asn].prefix not in v4]
    if missing or not topo.fabric.ipv6 or not others:
        return missing
    v6 = table("show ipv6 route json")
    if v6 is None:
        return None
    addressing6 = _addressing(topo, lambda t: topology_addressing6(t, topology_addressing(t)), family=6)
    return [asn for asn in others if addressing6[asn].prefix not in v6]


_ADDRESSING: Dict[Tuple[int, int], Any] = {}


def _addressing(topo: Topology, compute, family: int = 4) -> Dict[int, Any]:
    key = (id(topo), family)
    if key not in _ADDRESSING:
        if not any(k[0] == id(topo) for k in _ADDRESSING):
            _ADDRESSING.clear()
        _ADDRESSING[key] = compute(topo)
    return _ADDRESSING[key]


def poll_workers() -> int:
    """vtysh calls in flight while waiting (each costs ~45 ms of CPU): twice the CPUs, at most 8."""
    return min(8, 2 * (os.cpu_count() or 1))


def wait_bgp(topo: Topology, timeout: float = BGP_TIMEOUT, progress: Progress = em._quiet,
             interval: float = 1.0, routes: bool = False) -> Tuple[bool, List[Dict[str, Any]]]:
    """Poll configured routers until all their expected sessions are Established (and, with
    `routes`, each has a route to every configured AS). A router found converged is not asked
    again, so a sweep costs less as the lab converges; progress with an ETA every 10 s."""
    from concurrent.futures import ThreadPoolExecutor
    routers = configured_routers(topo)
    deadline = time.monotonic() + timeout
    t0 = last_note = time.monotonic()
    reports: Dict[str, Dict[str, Any]] = {}
    done: set = set()
    sessions_noted = not routes

    def poll(router: str) -> Tuple[str, Dict[str, Any], bool]:
        rep = bgp_sessions(topo, router)
        ok = bgp_converged(rep)
        if ok and routes:
            missing = routes_missing(topo, router)
            rep["routes_missing"] = missing
            ok = missing == []
        return router, rep, ok

    with ThreadPoolExecutor(max_workers=poll_workers(), thread_name_prefix="bgp-poll") as pool:
        while True:
            todo = [r for r in routers if r not in done]
            for router, rep, ok in pool.map(poll, todo):
                reports[router] = rep
                if ok:
                    done.add(router)
            if not sessions_noted:
                up, total = _count_sessions(list(reports.values()))
                if up == total and all(bgp_converged(r) for r in reports.values()):
                    sessions_noted = True
                    progress(f"BGP: all {total} sessions established on {len(routers)} routers "
                             f"({time.monotonic() - t0:.1f} s)")
            if len(done) == len(routers):
                return True, [reports[r] for r in routers]
            now = time.monotonic()
            if now > deadline:
                return False, [reports[r] for r in routers]
            if now - last_note >= 10:
                up, total = _count_sessions(list(reports.values()))
                rate = len(done) / (now - t0)
                eta = f", ETA {(len(routers) - len(done)) / rate:.0f} s" if rate > 0 and done else ""
                what = "converged (sessions and routes)" if routes else "with every session up"
                progress(f"waiting for BGP: {up}/{total} sessions established, "
                         f"{len(done)}/{len(routers)} routers {what}{eta}")
                last_note = now
            time.sleep(interval)


def _count_sessions(reports: Sequence[Dict[str, Any]]) -> Tuple[int, int]:
    up = total = 0
    for r in reports:
        expected = [s for s in r["sessions"] if s["expected"]]
        total += len(expected) + len(r["missing"])
        up += sum(1 for s in expected if s["state"] == "Established")
    return up, total


# ---- controller and REST --------------------------------------------------------------------

def _effective(state: LabState) -> Topology:
    return em._load(str(state.data["effective_topology"]))


def start_controller(topo: Topology, state: LabState, progress: Progress) -> None:
    eff = _effective(state)
    sdir = em.state_dir(topo)
    rec = state.process("controller")
    if rec is None or not em.proc_alive(rec):
        log = os.path.join(sdir, "controller.log")
        argv = em.nsenter_argv(em.mgmt_ns(topo), _console("minet", "minet_sdn.cli.main") + [
            "controller", "--topology", str(state.data["effective_topology"]),
            "--state", os.path.join(sdir, "controller-state.json")])
        pid = em.spawn_daemon(argv, log, cwd=sdir)
        rec = em.proc_record("controller", pid)
        rec["log"] = log
        state.add_process(rec)
        ns, host = em.mgmt_ns(topo), eff.controller.rest_host
        deadline = time.monotonic() + 30
        while not (em.wait_tcp(ns, host, eff.controller.rest_port, timeout=0.5)
                   and em.wait_tcp(ns, eff.controller.ofp_host, eff.controller.ofp_port, timeout=0.5)):
            if not em.proc_alive(rec):
                raise LabError(f"the controller exited: {_tail(log)} (log: {log})")
            if time.monotonic() > deadline:
                raise LabError(f"the controller does not listen on {host}:{eff.controller.rest_port} "
                               f"after 30 s (log: {log})")
        progress(f"controller: pid {pid} in {em.mgmt_ns(topo)}, OpenFlow {eff.controller.ofp_host}:"
                 f"{eff.controller.ofp_port}, REST {eff.controller.rest_url}")
    state.data["controller"] = {"ofp": f"{eff.controller.ofp_host}:{eff.controller.ofp_port}",
                                "rest": eff.controller.rest_url, "log": rec.get("log")}
    state.save()
    _start_relay(topo, state, eff)


def _start_relay(topo: Topology, state: LabState, eff: Topology) -> None:
    rec = state.process("relay")
    if rec is not None and em.proc_alive(rec):
        return
    sdir = em.state_dir(topo)
    port_file = os.path.join(sdir, "relay.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    argv = [sys.executable, "-m", "minet_sdn.lab.relay", "--netns", em.mgmt_ns(topo),
            "--target", f"{eff.controller.rest_host}:{eff.controller.rest_port}", "--port-file", port_file]
    pid = em.spawn_daemon(argv, os.path.join(sdir, "relay.log"), cwd=sdir)
    rec = em.proc_record("relay", pid)
    state.add_process(rec)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if not em.proc_alive(rec) or time.monotonic() > deadline:
            raise LabError(f"the REST relay did not start (log: {os.path.join(sdir, 'relay.log')})")
        time.sleep(0.05)
    with open(port_file) as fh:
        port = int(fh.read().strip())
    state.data["rest_relay"] = f"http://127.0.0.1:{port}"
    state.save()


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:
            lines = [line.strip() for line in fh.read().splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


class _NetnsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, netns: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._netns = netns

    def connect(self) -> None:
        self.sock = em.netns_connect(self._netns, self.host, self.port, timeout=self.timeout)


def rest_call(topo_path: str, method: str, path: str, body: Any = None,
              timeout: float = 10.0) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON or text) of `METHOD PATH` on the lab's controller.

    Reaches the controller inside the lab's mgmt namespace from wherever the caller runs.
    Raises LabError when no lab of this topology exists or the controller does not answer.
    """
    topo = load(topo_path)
    state = _state(topo, topo_path)
    eff = _effective(state)
    conn = _NetnsHTTPConnection(em.mgmt_ns(topo), eff.controller.rest_host, eff.controller.rest_port, timeout)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    if payload is None and method.upper() in ("POST", "PUT", "PATCH"):
        payload = b""
    if method.upper() == "POST":
        headers[CSRF_HEADER] = CSRF_VALUE
    try:
        conn.request(method.upper(), path, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as exc:
        raise LabError(f"cannot reach the lab's controller at {eff.controller.rest_url} "
                       f"(in {em.mgmt_ns(topo)}): {exc.strerror or exc}")
    finally:
        conn.close()
    if (resp.getheader("Content-Type") or "").startswith("application/json"):
        return resp.status, json.loads(raw.decode() or "null")
    return resp.status, raw.decode(errors="replace")


# ---- provisioning ---------------------------------------------------------------------------

def run_provision(topo: Topology, state: LabState, progress: Progress, down: bool = False,
                  timeout: float = PROVISION_TIMEOUT) -> Tuple[int, str]:
    """`minet-provision --master` over SSH, from the mgmt namespace; (exit code, last line)."""
    ssh = state.data["ssh"]
    argv = _console("minet-provision", "minet_sdn.cli.provision") + [
        "--topology", str(state.data["effective_topology"]), "--master",
        "--known-hosts", str(ssh["known_hosts"]), "--identity", str(ssh["key"])]
    remote = os.path.join(os.path.dirname(sys.executable), "minet-provision")
    if os.path.exists(remote):       # the servers are this machine: the very same installation
        argv += ["--remote-command", remote]
    argv += _backend_args(state)
    if down:
        argv.append("--down")
    log_path = os.path.join(em.state_dir(topo), "provision.log")
    argv = em.nsenter_argv(em.mgmt_ns(topo), argv)
    last = ""
    with open(log_path, "a") as log:
        log.write(f"# {time.strftime('%F %T')}: {' '.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, cwd=em.state_dir(topo))
        except OSError as exc:
            return 127, str(exc)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                line = line.rstrip()
                if line:
                    last = line
                    progress(f"  provision: {line}")
            rc = proc.wait()
        finally:
            timer.cancel()
    return rc, last


# ---- up, down, status -----------------------------------------------------------------------

def _health(topo: Topology, state: LabState) -> List[str]:
    """What is wrong with a lab that should be running (empty when all is well)."""
    problems = [f"namespace {ns} is gone" for ns in state.namespaces if not em.netns_exists(ns)]
    problems += [f"{p['name']} (pid {p['pid']}) is not running" for p in state.processes
                 if not em.proc_alive(p)]
    return problems


def _repair(topo: Topology, state: LabState, progress: Progress) -> List[str]:
    """Restart what can simply be restarted: a dead sshd, controller or REST relay."""
    repaired: List[str] = []
    for rec in list(state.processes):
        name = str(rec["name"])
        if em.proc_alive(rec) or not (name.endswith("/sshd") or name in ("controller", "relay")):
            continue
        if name.endswith("/sshd"):
            server = name.split("/", 1)[0]
            if em.netns_exists(em.server_ns(topo, server)) and server in state.servers:
                progress(f"restarting sshd of {server} (pid {rec['pid']} is gone)")
                em.start_sshd(topo, server, state, str(state.servers[server]["mgmt_ip"]))
        elif name == "controller" and em.netns_exists(em.mgmt_ns(topo)):
            progress(f"restarting the controller (pid {rec['pid']} is gone)")
            start_controller(topo, state, progress)
        elif name == "relay":
            _start_relay(topo, state, _effective(state))
        else:
            continue
        repaired.append(name)
    return repaired


def _ensure_image(state: LabState, progress: Progress) -> None:
    """The docker backend's image, built here when missing: the emulated servers share this
    machine's docker engine but have no way out to the Debian mirror the build needs."""
    from ..provision.image import ImageProblem, docker_problem, ensure_image, image_name
    why = docker_problem()
    if why:
        raise LabError(f"docker backend: {why}")
    name = state.image or image_name()
    try:
        took = ensure_image(name, progress)
    except ImageProblem as exc:
        raise LabError(f"docker backend: {exc}") from None
    progress(f"docker image {name}: " + (f"built in {took:.1f} s" if took is not None else "present"))


def lab_up(topo_path: str, *, mgmt_subnet: str = em.DEFAULT_MGMT_SUBNET, progress: Optional[Progress] = None,
           provision: bool = True, bgp_timeout: Optional[float] = None,
           keep_on_failure: bool = False, backend: str = "netns", image: Optional[str] = None) -> Dict[str, Any]:
    """Bring the lab of `topo_path` up (a no-op when it already is); returns the summary.

    `backend` is how provisioning makes the nodes: "netns" (named namespaces) or "docker"
    (containers of `image`, default $MINET_DOCKER_IMAGE, else minet-sdn/frr:<version>, built here when
    missing); a lab keeps the backend and image it was built with.

    On a failure before provisioning has finished, a lab this call started is removed again
    (unless keep_on_failure). BGP not converging in `bgp_timeout` raises LabError but keeps the lab.
    """
    progress = progress or printing_progress()
    t0 = time.monotonic()
    em.check_host()
    topo = load(topo_path)
    problems = validate.problems(topo)       # what `minet validate` and minet-provision refuse
    if problems:
        raise LabError(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
    with em.lab_lock(topo):
        state = LabState.load(topo)
        created = state is None
        if state is not None:
            if state.backend != backend:
                raise LabError(f"the lab {topo.name} is up with the {state.backend} "
                               f"backend; run `minet lab down {topo_path}` first to use {backend}")
            if state.data.get("topology_sha256") != em.topology_digest(topo_path):
                raise LabError(f"the lab {topo.name} is up with another version of {topo_path} "
                               f"(from {state.data.get('topology')}); run `minet lab down` first")
            repaired = _repair(topo, state, progress)
            problems = _health(topo, state)
            if problems:
                raise LabError(f"the lab {topo.name} is damaged ({problems[0]}); "
                               f"run `minet lab down {topo_path}` and up again")
            if state.data.get("phase") == "up" and (state.data.get("provisioned") or not provision):
                ok, reports = wait_bgp(topo, timeout=0) if provision else (True, [])
                progress(f"lab {topo.name} is already up; " + (f"restarted {', '.join(repaired)}"
                                                                 if repaired else "nothing to do"))
                return _summary(topo, state, reports, time.monotonic() - t0, already=True)
            progress(f"lab {topo.name}: resuming from phase {state.data.get('phase')}")
        try:
            if state is None:
                progress(f"lab {topo.name}: {len(topo.servers)} servers, {len(topo.ases)} ASes, "
                         f"{len(topo.links)} links")
                check_capacity(topo, progress, backend)
                state = em.build_servers(topo_path, mgmt_subnet=mgmt_subnet, progress=progress).state
                state.data["backend"] = backend
                if backend == "docker":      # resolved here ($MINET_DOCKER_IMAGE does not cross SSH)
                    from ..provision.image import image_name
                    state.data["image"] = image_name(image)
                state.save()
            start_controller(topo, state, progress)
            if not provision:
                state.data["phase"] = "up"
                state.save()
                return _summary(topo, state, [], time.monotonic() - t0)
            if state.backend == "docker":
                _ensure_image(state, progress)
            state.data["phase"] = "provisioning"
            state.save()
            progress("provisioning every server over SSH from the mgmt namespace (minet-provision --master)")
            rc, last = run_provision(topo, state, progress)
            if rc != 0:
                last = _keep_failure_logs(topo, last)
                raise LabError(f"provisioning failed (exit {rc}): {clip_line(last)} "
                               f"(log: {os.path.join(em.state_dir(topo), 'provision.log')})")
            state.data["phase"] = "provisioned"
            state.data["provisioned"] = True
            state.save()
        except BaseException:
            if created and state is not None and not keep_on_failure:
                progress("removing the half-built lab")
                _down(topo, state, progress, provisioned=state.data.get("phase") == "provisioning")
            raise
        progress(f"waiting for BGP on {len(configured_routers(topo))} configured routers")
        if bgp_timeout is None:
            bgp_timeout = default_bgp_timeout(topo)
        ok, reports = wait_bgp(topo, timeout=bgp_timeout, progress=progress, routes=True)
        if not ok:
            up, total = _count_sessions(reports)
            bad = [f"{r['router']}" for r in reports if not bgp_converged(r)]
            no_routes = [f"{r['router']}" for r in reports if r.get("routes_missing")]
            raise LabError(f"BGP did not converge within {bgp_timeout:g} s: {up}/{total} sessions "
                           f"established (not yet: {', '.join(bad[:5]) or 'none'}; routes missing on "
                           f"{len(no_routes)} routers{': ' + ', '.join(no_routes[:5]) if no_routes else ''}); "
                           f"the lab is kept: see `minet lab status {topo_path}`")
        state.data["phase"] = "up"
        state.data["up_seconds"] = round(time.monotonic() - t0, 1)
        state.save()
        return _summary(topo, state, reports, time.monotonic() - t0)


def _keep_failure_logs(topo: Topology, message: str) -> str:
    """The servers' lists of FRR daemons that did not start live in their provisioning state,
    which the rollback removes: keep copies beside the lab's state, and name those instead."""
    for server in topo.servers:
        name = f"{topo.name}.{server}.frr-start-failures.log"
        src = os.path.join(em.provision_state_dir(topo, server), name)
        if os.path.exists(src):
            dst = os.path.join(em.lab_root(), name)
            try:
                shutil.copyfile(src, dst)
            except OSError:
                continue
            message = message.replace(src, dst)
    return message


def check_capacity(topo: Topology, progress: Progress, backend: str = "netns") -> None:
    """Every server of the lab runs on this machine: refuse before building anything if the whole
    topology does not fit (see provision/capacity.py)."""
    from ..provision import capacity
    from ..provision.plan import build_plan
    plans = [build_plan(topo, server) for server in topo.servers]
    shared = capacity.sharing([r for p in plans for r in p.routers], backend == "netns")
    need = capacity.estimate(capacity.topology_daemon_lists(plans), servers=len(topo.servers), shared=shared)
    progress(f"estimate: {need.line()}")
    from ..provision.apply import ensure_neighbour_limits
    for change in ensure_neighbour_limits(need.routers):   # every server shares this kernel's table
        progress(change)
    if not capacity.enabled():
        return
    why = capacity.refusal(need, capacity.available_mb(), capacity.free_pids())
    if why:
        raise LabError(why)


def _summary(topo: Topology, state: LabState, reports: List[Dict[str, Any]], seconds: float,
             already: bool = False) -> Dict[str, Any]:
    up, total = _count_sessions(reports)
    return {
        "name": topo.name, "already_up": already, "seconds": round(seconds, 1),
        "backend": state.backend,
        "servers": {s: {"ns": v["ns"], "mgmt_ip": v["mgmt_ip"], "underlay_ip": v["underlay_ip"]}
                    for s, v in state.servers.items()},
        "ases": len(topo.ases), "configured_ases": sum(1 for a in topo.ases.values() if a.configure),
        "routers": len(topo.routers), "links": len(topo.links), "remote_links": len(topo.remote_links),
        "bgp_sessions": {"established": up, "expected": total},
        "controller": state.data.get("controller", {}).get("rest"),
        "rest_relay": state.data.get("rest_relay"),
        "state_dir": em.state_dir(topo),
    }


def format_summary(s: Dict[str, Any]) -> str:
    lines = [f"lab {s['name']} is up" + (" (already was)" if s["already_up"] else f" in {s['seconds']:.1f} s")]
    for name, v in s["servers"].items():
        lines.append(f"  server {name:<8} ns {v['ns']:<14} mgmt {v['mgmt_ip']:<15} underlay {v['underlay_ip']}")
    lines.append(f"  {s['ases']} ASes ({s['configured_ases']} configured), {s['routers']} routers, "
                 f"{s['links']} links ({s['remote_links']} remote)")
    lines.append(f"  BGP sessions established: {s['bgp_sessions']['established']}/{s['bgp_sessions']['expected']}")
    if s.get("controller"):
        lines.append(f"  controller REST {s['controller']} (from this host: {s.get('rest_relay')})")
    lines.append(f"  state {s['state_dir']}")
    return "\n".join(lines)


def _provision_down_locally(topo: Topology, state: LabState, server: str) -> Tuple[int, str]:
    """Fallback of --master --down: the server's own `minet-provision --server X --down`, run in
    its namespace with its environment (as its sshd would), without SSH."""
    env = [f"{k}={v}" for k, v in em.server_env(topo, server).items()]
    argv = em.nsenter_argv(em.server_ns(topo, server), ["env", *env] + _console(
        "minet-provision", "minet_sdn.cli.provision") + [
        "--topology", str(state.data["effective_topology"]), "--server", server, "--down"] + _backend_args(state))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    with open(os.path.join(em.state_dir(topo), "provision.log"), "a") as log:
        log.write(f"# local fallback: {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    return proc.returncode, em._last_line(proc.stderr or proc.stdout)


def _down(topo: Topology, state: LabState, progress: Progress, provisioned: bool) -> List[str]:
    problems: List[str] = []
    if provisioned:
        sshd_ok = all(em.proc_alive(p) for p in state.processes if str(p["name"]).endswith("/sshd"))
        rc, last = 1, "sshd of some server is not running"
        if sshd_ok:
            progress("unprovisioning every server over SSH (minet-provision --master --down)")
            rc, last = run_provision(topo, state, progress, down=True, timeout=180)
        if rc != 0:
            progress(f"provisioning --down over SSH failed ({last}); unprovisioning each server locally")
            for server in state.servers:
                if not em.netns_exists(em.server_ns(topo, server)):
                    continue
                rc, last = _provision_down_locally(topo, state, server)
                if rc != 0:
                    problems.append(f"provisioning --down of {server} failed (exit {rc}): {last}")
    nodes = [ns for server in topo.servers for ns, _ in _plan_nodes(topo, server).values()]
    leftovers = [ns for ns in nodes if em.netns_exists(ns)]
    if state.backend == "docker":
        problems += _remove_containers(topo, state, progress)
    progress("stopping the controller, sshd and Open vSwitch; deleting the lab's namespaces")
    problems += em.teardown(topo, state, progress)
    for ns in leftovers:
        if em.netns_exists(ns):
            problems.append(f"node namespace {ns} is still there (left by provisioning)")
    return problems


def _remove_containers(topo: Topology, state: LabState, progress: Progress) -> List[str]:
    """Containers provisioning left (labelled for this instance and one of the lab's servers)."""
    from ..provision.docker import DockerProblem, list_containers
    from ..provision.image import docker
    try:
        left = [c for c in list_containers(topo.name) if c["server"] in state.servers]
        for c in left:
            progress(f"removing container {c['name']} that provisioning left")
            docker("rm", "--force", "--volumes", c["id"])
    except DockerProblem as exc:
        return [f"containers of {topo.name}: {exc}"]
    return []


def lab_down(topo_path: str, *, progress: Optional[Progress] = None) -> List[str]:
    """Remove the lab of `topo_path`; returns problems met (the rest is removed regardless)."""
    progress = progress or printing_progress()
    em.check_host()
    topo = load(topo_path)
    for server in topo.servers:        # lists kept from a failed `up` (_keep_failure_logs)
        try:
            os.unlink(os.path.join(em.lab_root(), f"{topo.name}.{server}.frr-start-failures.log"))
        except OSError:
            pass
    with em.lab_lock(topo):
        state = LabState.load(topo)
        if state is None:
            progress(f"no lab of {topo.name} here; nothing to do")
            return []
        provisioned = bool(state.data.get("provisioned")) or state.data.get("phase") == "provisioning"
        try:                 # what the lab was built from, even if the user's file changed since
            topo = _effective(state)
        except LabError:
            pass
        problems = _down(topo, state, progress, provisioned)
        progress(f"lab {topo.name} is down" + (f" with {len(problems)} problem(s)" if problems else ""))
        return problems


def lab_status(topo_path: str, json: bool = False) -> Any:
    """The lab's nodes, addresses, links and BGP sessions: a dict (json=True) or text."""
    topo = load(topo_path)
    state = _state(topo, topo_path)
    procs = {str(p["name"]): p for p in state.processes}

    def alive(name: str) -> Optional[bool]:
        return em.proc_alive(procs[name]) if name in procs else None

    status: Dict[str, Any] = {
        "name": topo.name, "phase": state.data.get("phase"), "state_dir": em.state_dir(topo),
        "backend": state.backend,
        "topology": state.data.get("topology"), "effective_topology": state.data.get("effective_topology"),
        "mgmt": {"ns": em.mgmt_ns(topo), "ip": state.data["mgmt"]["ip"], "subnet": state.data["mgmt_subnet"],
                 "controller": {"alive": alive("controller"), **state.data.get("controller", {})},
                 "rest_relay": state.data.get("rest_relay")},
        "servers": {}, "links": [], "bgp": [], "problems": _health(topo, state),
    }
    for name, srv in state.servers.items():
        status["servers"][name] = {
            "ns": srv["ns"], "mgmt_ip": srv["mgmt_ip"], "underlay_ip": srv["underlay_ip"],
            "ssh": srv.get("ssh"), "ovs_dir": srv["dir"],
            "ovsdb": alive(f"{name}/ovsdb-server"), "vswitchd": alive(f"{name}/ovs-vswitchd"),
            "sshd": alive(f"{name}/sshd"),
            "routers": [r for r, as_ in topo.routers.items() if as_.server == name]}
    ctrl_links: Dict[int, Dict[str, Any]] = {}
    try:
        code, body = rest_call(topo_path, "GET", "/v1/links", timeout=3)
        if code == 200:
            items = body.get("links", body) if isinstance(body, dict) else body
            ctrl_links = {int(l["id"]): l for l in items if isinstance(l, dict) and "id" in l}
        else:
            status["problems"].append(f"controller answered {code} to GET /v1/links")
    except (LabError, ValueError) as exc:
        status["problems"].append(str(exc))
    for link in topo.links:
        c = ctrl_links.get(link.id, {})
        status["links"].append({
            "id": link.id, "a": link.a.router, "b": link.b.router, "rel": link.rel,
            "servers": list(link.servers()), "remote": link.remote,
            "state": c.get("state"), "tunnel_live": c.get("tunnel_live")})
    if state.data.get("provisioned"):
        status["bgp"] = [bgp_sessions(topo, r) for r in configured_routers(topo)]
    status["shaping"] = _shaping_rows(topo)
    if json:
        return status
    return _format_status(status)


def _shaping_rows(topo: Topology) -> List[Dict[str, Any]]:
    """Shaped links: configured vs the qdiscs their router ends carry (provision/shaping.py)."""
    from ..provision import shaping
    from ..provision.plan import build_plan

    def read(node: str, ifname: str) -> Optional[List[Dict[str, Any]]]:
        place = node_place(topo, node)
        if place is None:
            return None
        try:
            res = subprocess.run(place.exec_prefix() + ["tc", "-j", "qdisc", "show", "dev", ifname],
                                 capture_output=True, text=True, timeout=10)
            return json.loads(res.stdout) if res.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None
    return shaping.lab_rows(topo, lambda s: build_plan(topo, s, root=em.provision_state_dir(topo, s)), read)


def _format_status(st: Dict[str, Any]) -> str:
    out = [f"lab {st['name']}: {st['phase']}  (nodes: {st.get('backend', 'netns')}, state {st['state_dir']})"]
    m = st["mgmt"]
    ctl = m["controller"]
    out.append(f"  mgmt       ns {m['ns']:<14} {m['ip']} ({m['subnet']})  controller "
               f"{'running' if ctl.get('alive') else 'NOT running'} {ctl.get('rest', '')}"
               f"  relay {m.get('rest_relay') or '-'}")
    for name, s in st["servers"].items():
        daemons = ", ".join(f"{d} {'ok' if s[d] else 'DOWN'}" for d in ("ovsdb", "vswitchd", "sshd"))
        out.append(f"  server {name:<6} ns {s['ns']:<14} mgmt {s['mgmt_ip']:<12} underlay "
                   f"{s['underlay_ip']:<12} {daemons}; routers {' '.join(s['routers'])}")
    out.append("  links:")
    for l in st["links"]:
        where = "-".join(l["servers"]) if l["remote"] else f"local {l['servers'][0]}"
        tunnel = "" if l["tunnel_live"] is None else ("  tunnel live" if l["tunnel_live"] else "  tunnel DOWN")
        out.append(f"    {l['id']:>3} {l['a']:<12} {l['b']:<12} {l['rel']:<9} {where:<10} "
                   f"{l['state'] or '?'}{tunnel}")
    if st["bgp"]:
        out.append("  BGP:")
        for r in st["bgp"]:
            if not r["reachable"]:
                out.append(f"    {r['router']:<12} (vtysh does not answer)")
                continue
            sess = "  ".join(f"{s['peer']} AS{s['remote_as']} {s['state']}" for s in r["sessions"])
            miss = f"  missing: {' '.join(r['missing'])}" if r["missing"] else ""
            out.append(f"    {r['router']:<12} {sess}{miss}")
    if st.get("shaping"):
        out.append("  shaped links (configured -> what each end carries):")
        for r in st["shaping"]:
            ends = "; ".join(f"{k} {v}" for k, v in r["ends"].items())
            out.append(f"    {r['link']:<16} {r['configured']:<24} {ends}"
                       + ("" if r["delay_applied"] else "  (delay NOT applied)"))
    for p in st["problems"]:
        out.append(f"  problem: {p}")
    return "\n".join(out)


# ---- exec -----------------------------------------------------------------------------------

def resolve_node(topo: Topology, node: str) -> Tuple[str, Dict[str, str], Optional[RouterPlace]]:
    """(namespace, extra environment, router place or None) of a node name.

    Nodes: `mgmt`, `underlay` (or `ul`), a server name (its OvS is reachable there: OVS_RUNDIR is
    set), a router `<asn>.<NAME>` or its host `<asn>.<NAME>.host`, or `NAME`/`NAME.host` when
    only one router has that name.
    """
    if node == "mgmt":
        return em.mgmt_ns(topo), {}, None
    if node in ("underlay", "ul"):
        return em.underlay_ns(topo), {}, None
    if node in topo.servers:
        return em.server_ns(topo, node), em.server_env(topo, node), None
    place = node_place(topo, node)
    if place is None:          # a bare router name (NAME or NAME.host) when it is unique
        base, host = (node[:-5], ".host") if node.endswith(".host") else (node, "")
        matches = [r for r in topo.routers if r.split(".", 1)[1] == base]
        if len(matches) > 1:
            raise LabError(f"node name {node} is ambiguous: {', '.join(m + host for m in matches)}")
        if matches:
            place = node_place(topo, matches[0] + host)
    if place is None:
        example = next(iter(topo.routers), "1.R")
        raise LabError(f"no node {node!r} in {topo.name} (nodes: mgmt, underlay, servers "
                       f"{', '.join(topo.servers)}, routers like {example}, hosts like {example}.host)")
    return place.netns, {}, place


def exec_in_node(topo_path: str, node: str, argv: Sequence[str]) -> int:
    """Run `argv` in a lab node with the caller's stdin/stdout; its exit code.

    For vtysh in a router, `--vty_socket` and `--config_dir <router dir>` are added automatically.
    """
    topo = load(topo_path)
    _state(topo, topo_path)
    if not argv:
        raise LabError("no command given (minet exec FILE NODE -- CMD ...)")
    ns, env, place = resolve_node(topo, node)
    argv = list(argv)
    if place is not None and place.vty_dir:
        argv = names.with_vtysh_dirs(argv, place.vty_dir)
    if place is not None and place.backend == "docker":        # the command runs in the container
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        return subprocess.call(names.exec_prefix("docker", ns, interactive=True, tty=tty) + argv)
    if not em.netns_exists(ns):
        raise LabError(f"node {node}: namespace {ns} does not exist (is the lab provisioned?)")
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise LabError(f"{argv[0]}: command not found")
    return subprocess.call(names.exec_prefix("netns", ns, env=env) + argv)
