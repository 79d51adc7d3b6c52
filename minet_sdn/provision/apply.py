"""Make a server match its plan (`up`), or remove what the plan made (`down`).

Idempotent: each step compares the machine with the plan and changes only what differs; every
change is recorded, so a second `up` reports 0 changes. Everything made is marked as this
instance's: node names start with topo.tag and have a marker file (holding the namespace's
identity) under the state dir; interfaces in the server's own namespace carry an alias; OvS rows
carry external_ids minet-instance/minet-server. `down` removes only marked things, so a foreign
namespace or bridge with a similar (or even the same) name survives.

If `up` fails half-way, what this run created is removed again (in reverse order) and a
ProvisionError names the server and the problem.

The Provisioner is split by concern, one mixin per file: journal.py (changes, undo, rollback,
bounded errors), network.py (state dir, nodes and markers, veths, routes, shaping, layer 2),
bridges.py (underlay, remote bridges), routers.py (FRR configuration and start-up). This file
holds the run itself: preflight, the order of the steps, `down`, stale things.
"""
from __future__ import annotations

import os
import pwd
import shutil
import threading
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

from .. import host
from . import capacity
from . import netlink as nlk
from . import ovs
from . import services
from .bridges import BridgeSteps, _move_address  # noqa: F401
from .journal import (Journal, Progress, ProvisionError, Report, _describe, _remove, _rmdir,  # noqa: F401
                      _write_json)
from .netlink import Netlink
from .netns import NetnsBackend, processes_in, stop_processes
from .network import HOST_SYSCTLS, ROUTER_SYSCTLS, NetworkSteps, _label  # noqa: F401
from .plan import DEFAULT_FRR_DIR, FRR_DIR_ENV, Node, Plan, frr_pathspace
# what callers and tests find here (the FRR start-up's pieces: provision/routers.py)
from .routers import (DAEMON_READY_TIMEOUT, FAIL_STOP, FRR_RUN_DIR, MEMORY_LOW_MB, MEMORY_WAIT,  # noqa: F401
                      NEIGH_PER_ROUTER, NEIGH_SYSCTLS, PROGRESS_EVERY, VTYSH_CONF, DaemonFailure, RouterSteps,
                      _last_log_line, _write_if_changed, ensure_neighbour_limits, neighbour_limits,
                      start_jobs, summarise_failures)


def make_backend(plan: Plan, image: Optional[str] = None, progress: Optional[Progress] = None):
    """The backend of `plan`: netns (named namespaces) or docker (containers; `image`, see image.py)."""
    if plan.backend == "netns":
        return NetnsBackend()
    if plan.backend == "docker":
        from .docker import DockerBackend
        return DockerBackend(plan, image=image, progress=progress)
    raise ValueError(f"unknown backend {plan.backend!r}")


class Provisioner(Journal, NetworkSteps, BridgeSteps, RouterSteps):
    """Runs `up` or `down` of one plan on this machine (the current network namespace)."""

    def __init__(self, plan: Plan, progress: Optional[Progress] = None, frr_dir: Optional[str] = None,
                 image: Optional[str] = None):
        self.plan = plan
        self._progress = progress or (lambda msg: None)
        self.backend = make_backend(plan, image=image, progress=self.progress)
        self.frr_dir = frr_dir or os.environ.get(FRR_DIR_ENV) or DEFAULT_FRR_DIR
        self.changes: List[str] = []
        self._undo: List[Tuple[str, Callable[[], None]]] = []
        self._nl: Optional[Netlink] = None
        self._identities: Dict[str, str] = {}        # node id -> identity (namespace dev:inode)
        self._fresh_ends: Set[Tuple[str, str]] = set()   # (node, ifname) of veths created in this run
        self._t0 = time.monotonic()
        self._lock = threading.Lock()                # FRR start-up runs in threads
        self._merging: Optional[bool] = None         # KSM on for the FRR we start (None: not asked yet)
        self._memory_note = 0.0                      # when "waits for memory" was last shown

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One run at a time per state root: an flock on the root directory itself (no lock file)."""
        with host.file_lock(os.path.dirname(os.path.dirname(self.plan.state_dir)), directory=True):
            yield

    def preflight(self) -> List[str]:
        problems = []
        if os.geteuid() != 0:
            problems.append("must run as root (namespaces, veths and OvS need it)")
        problems += self.backend.preflight()
        if self.plan.routers and self.backend.uses_host_frr:
            for daemon in self.plan.routers[0].daemons:
                path = os.path.join(self.frr_dir, daemon)
                if not os.access(path, os.X_OK):
                    problems.append(f"FRR daemon {path} is missing (package frr)")
            try:
                pwd.getpwnam("frr")
            except KeyError:
                problems.append("user frr does not exist (package frr)")
        if self.plan.routers and capacity.enabled():
            # routers not running yet: what this run would add to the machine
            new = [r.daemons for r in self.plan.routers if not os.path.exists(r.pid_path("zebra"))]
            if new:
                shared = capacity.sharing(self.plan.routers, self.backend.merges_pages)
                why = capacity.refusal(capacity.estimate(new, servers=0, shared=shared), capacity.available_mb(),
                                       capacity.free_pids(), where=f"server {self.plan.server}")
                if why:
                    problems.append(why)
        if self.plan.layer2 is not None:
            for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"):
                if not shutil.which(tool):
                    problems.append(f"{tool} is missing (package openvswitch-switch): layer 2 needs it")
        if self.plan.bridges:
            if not shutil.which("ovs-vsctl"):
                problems.append("ovs-vsctl is missing (package openvswitch-switch)")
            else:
                why = ovs.reachable()
                if why:
                    problems.append(f"Open vSwitch is not reachable (OVS_RUNDIR={os.environ.get('OVS_RUNDIR', '')}): {why}")
        return problems

    def up(self) -> Report:
        t0 = time.monotonic()
        problems = self.preflight()
        if problems:
            raise ProvisionError(self.plan.server, "; ".join(problems))
        with self._locked(), Netlink() as self._nl:
            try:
                self._up_state_dir()
                self._up_nodes()
                self._up_veths()
                self._up_routes()
                self._up_shaping()
                # The switches and the remote bridges do not gate the routers (their interfaces
                # exist already; sessions come up once the fabric does), so they are built while
                # FRR starts, which is most of the time at class size.
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fabric") as side:
                    fabric = side.submit(self._up_fabric)
                    self._up_routers()
                    fabric.result()
                services.up(self)           # DNS servers, resolv.conf (provision/services.py)
                self._remove_stale()
            except BaseException as exc:          # an interrupt (SIGINT/SIGTERM) rolls back too
                what = "interrupted" if isinstance(exc, KeyboardInterrupt) else self._bounded(_describe(exc))
                rolled = self._rollback()
                err = ProvisionError(self.plan.server, what)
                err.rolled_back = rolled          # type: ignore[attr-defined]
                raise err from exc
        return self._report("up", t0)

    def _up_fabric(self) -> None:
        self._up_layer2()
        if self.plan.bridges:
            self._up_underlay()
            self._up_bridges()

    def _remove_stale(self) -> None:
        for node, marker in self._stale_nodes():
            self.backend.delete(node, marker.get("identity", ""))
            _remove(self.plan.marker_path(node))
            _rmdir(os.path.join(FRR_RUN_DIR, frr_pathspace(node.ns)))
            self.changes.append(f"removed stale node {node.ns}")
        planned = {end.ifname for v in self.plan.veths for end in (v.a, v.b) if end.node is None}
        for ifname in nlk.links_with_alias(self._nl(None), self.plan.alias):
            if ifname not in planned and nlk.delete_link(self._nl, None, ifname, alias=self.plan.alias):
                self.changes.append(f"removed stale interface {ifname}")
        if self.plan.bridges or (shutil.which("ovs-vsctl") and ovs.reachable() is None):
            keep = {b.name for b in self.plan.bridges} | {self.plan.underlay_bridge}
            for name in ovs.our_bridges(ovs.read_state(), self.plan.marks):
                if name not in keep and ovs.delete_bridge(name, self.plan.marks):
                    self.changes.append(f"removed stale bridge {name}")

    def down(self) -> Report:
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise ProvisionError(self.plan.server, "must run as root")
        with self._locked(), Netlink() as self._nl:
            try:
                self._down()
            except Exception as exc:
                raise ProvisionError(self.plan.server, self._bounded(_describe(exc))) from exc
        return self._report("down", t0)

    def _down(self) -> None:
        services.down(self)                 # before the nodes: an nsd in a container's namespace
        # nodes: the planned ones and stale ones, each only if its marker matches what exists
        nodes: List[Tuple[Node, dict]] = []
        for node in self.plan.nodes:
            marker = self._read_marker(node)
            if marker:
                nodes.append((node, marker))
        nodes += self._stale_nodes()
        live = {}
        for node, marker in nodes:
            ident = self.backend.identity(node)
            if ident is not None and ident == marker.get("identity") and marker.get("instance") == self.plan.instance:
                live[node.ns] = (node, ident)
        self.progress(f"removing {len(live)} nodes")
        pids = processes_in([ident for _, ident in live.values()])
        all_pids = [p for ps in pids.values() for p in ps]
        if all_pids:
            stop_processes(all_pids)
            self.changes.append(f"stopped {len(all_pids)} processes")
        for node, ident in live.values():
            self.backend.delete(node, ident)
            self.changes.append(f"removed node {node.ns}")
        for node, _ in nodes:
            _remove(self.plan.marker_path(node))
            _rmdir(os.path.join(FRR_RUN_DIR, frr_pathspace(node.ns)))
        # server-side ends normally vanish with their peers; any left carry our alias
        for ifname in nlk.links_with_alias(self._nl(None), self.plan.alias):
            if nlk.delete_link(self._nl, None, ifname, alias=self.plan.alias):
                self.changes.append(f"removed interface {ifname}")
        if shutil.which("ovs-vsctl") and ovs.reachable() is None:
            state = ovs.read_state()
            underlay = self.plan.underlay_bridge
            for name in ovs.our_bridges(state, self.plan.marks):
                if name != underlay and ovs.delete_bridge(name, self.plan.marks):
                    self.changes.append(f"removed bridge {name}")
            if self._restore_underlay(underlay):
                self.changes.append(f"removed underlay bridge {underlay} (address moved back)")
        if os.path.isdir(self.plan.state_dir):
            self._remove_state_dir()
            self.changes.append(f"removed state dir {self.plan.state_dir}")
        if os.path.exists(self.failure_log_path()):
            _remove(self.failure_log_path())
            self.changes.append(f"removed {self.failure_log_path()}")


def up(plan: Plan, progress: Optional[Progress] = None) -> Report:
    return Provisioner(plan, progress).up()


def down(plan: Plan, progress: Optional[Progress] = None) -> Report:
    return Provisioner(plan, progress).down()
