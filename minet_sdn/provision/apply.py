"""Make a server match its plan (`up`), or remove what the plan made (`down`).

Idempotent: each step compares the machine with the plan and changes only what differs; every
change is recorded, so a second `up` reports 0 changes. Everything made is marked as this
instance's: node names start with topo.tag and have a marker file (holding the namespace's
identity) under the state dir; interfaces in the server's own namespace carry an alias; OvS rows
carry external_ids minet-instance/minet-server. `down` removes only marked things, so a foreign
namespace or bridge with a similar (or even the same) name survives.

If `up` fails half-way, what this run created is removed again (in reverse order) and a
ProvisionError names the server and the problem.
"""
from __future__ import annotations

import ipaddress
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .. import host
from ..messages import ERROR_LINE_LIMIT, clip_line
from . import capacity
from . import netlink as nlk
from . import ovs
from . import services
from .image import ImageProblem
from .netlink import Netlink, NetlinkProblem
from .netns import NetnsBackend, processes_in, stop_processes
from .frr import ALL_DAEMONS
from .plan import DEFAULT_FRR_DIR, FRR_DIR_ENV, Iface, Node, Plan, Router, Veth, frr_pathspace

# keep_addr_on_down: an interface set down (`ip link set X down`, vtysh `shutdown`, a link failed
# by the controller) keeps its global IPv6 addresses, as IPv4 does; without it the address is gone
# when the link comes back and the IPv6 session with it, until the next provisioning.
ROUTER_SYSCTLS = (("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1"),
                  ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0"),
                  ("net.ipv6.conf.all.keep_addr_on_down", "1"), ("net.ipv6.conf.default.keep_addr_on_down", "1"))
HOST_SYSCTLS = (("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.default.rp_filter", "0"))
# Start-up of FRR: each daemon gets DAEMON_READY_TIMEOUT seconds from its own start to be ready
# ($MINET_FRR_READY_TIMEOUT); routers start `start_jobs()` at a time ($MINET_FRR_JOBS, default: the
# number of CPUs); after FAIL_STOP failures on a server the remaining routers are not tried.
DAEMON_READY_TIMEOUT = float(os.environ.get("MINET_FRR_READY_TIMEOUT") or 60.0)
FAIL_STOP = 20
# With page merging on (fabric.share_memory), a router's memory is shared only once ksmd has scanned
# it, a minute or more after it started at class size: starting routers faster than ksmd merges them
# would need the unmerged peak, which a big topology may not have. So while merging is on, a router
# waits to start while MemAvailable is under MEMORY_LOW_MB (ksmd keeps freeing it), at most
# MEMORY_WAIT seconds; then it fails with that reason, and the run rolls back.
MEMORY_LOW_MB = float(os.environ.get("MINET_MEMORY_LOW_MB") or 1536.0)
MEMORY_WAIT = 300.0
PROGRESS_EVERY = 5.0
FRR_RUN_DIR = "/var/run/frr"


def start_jobs(env: Optional[Dict[str, str]] = None, cpus: Optional[int] = None) -> int:
    """How many routers one server starts at a time: $MINET_FRR_JOBS, else its CPU count (at least 2)."""
    env = os.environ if env is None else env
    try:
        n = int(env.get("MINET_FRR_JOBS") or 0)
    except ValueError:
        n = 0
    return n if n > 0 else max(2, cpus or os.cpu_count() or 1)


@dataclass(frozen=True)
class DaemonFailure:
    router: str
    daemon: str
    why: str
    tried: bool = True        # False: never started (zebra failed, or too many failures before)


def summarise_failures(failures: List[DaemonFailure], total: int, log_path: str) -> str:
    """One line: '57 of 120 daemons did not start: ospfd (41), bgpd (16); first: router 16.VIEN
    ospfd: <why>; full list in <path>' (daemons never tried are counted apart)."""
    tried = [f for f in failures if f.tried]
    skipped = len(failures) - len(tried)
    counts: Dict[str, int] = {}
    for f in tried:
        counts[f.daemon] = counts.get(f.daemon, 0) + 1
    by = ", ".join(f"{d} ({n})" for d, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    first = tried[0] if tried else failures[0]
    line = f"{len(tried)} of {total} daemons did not start: {by or 'none'}"
    if skipped:
        line += f" ({skipped} more not started after that)"
    why = " ".join(first.why.split())
    why = why if len(why) <= 300 else why[:297] + "..."
    return f"{line}; first: router {first.router} {first.daemon}: {why}; full list in {log_path}"


# The kernel's neighbour (ARP / NDP) tables are one per machine, shared by every namespace, with
# the limits of the initial namespace (gc_thresh3 = 1024 by default). Each router holds about ten
# entries (ring and host neighbours, eBGP peers, and one per multicast group it sends to, e.g.
# OSPF's 224.0.0.5 on each ring link). At ~330 routers the table overflowed ("neighbor table
# overflow!"), multicast sends failed (IpOutDiscards), OSPF hellos went missing and adjacencies
# cycled. Provisioning raises the limits (never lowers them) before starting FRR.
NEIGH_PER_ROUTER = 16
NEIGH_SYSCTLS = ("/proc/sys/net/ipv4/neigh/default", "/proc/sys/net/ipv6/neigh/default")


def neighbour_limits(routers: int, current: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """(gc_thresh2, gc_thresh3) for `routers` routers on this kernel, None if `current` suffices."""
    want3 = 1024 + NEIGH_PER_ROUTER * routers
    if current[1] >= want3:
        return None
    return max(current[0], want3 * 3 // 4), want3


def ensure_neighbour_limits(routers: int) -> List[str]:
    changes = []
    for base in NEIGH_SYSCTLS:
        try:
            with open(f"{base}/gc_thresh2") as f2, open(f"{base}/gc_thresh3") as f3:
                cur = (int(f2.read()), int(f3.read()))
        except (OSError, ValueError):
            continue
        new = neighbour_limits(routers, cur)
        if new is None:
            continue
        for name, value in (("gc_thresh3", new[1]), ("gc_thresh2", new[0])):
            try:
                with open(f"{base}/{name}", "w") as fh:
                    fh.write(str(value))
                changes.append(f"{base.split('/')[4]} neighbour table {name}: {value}")
            except OSError:      # e.g. inside a container: the limit stays, the lab may not scale
                pass
    return changes


def _last_log_line(path: str) -> Optional[str]:
    """The last non-empty line of a daemon's log file, shortened (None if there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [l.strip() for l in fh.read().decode(errors="replace").splitlines() if l.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None

Progress = Callable[[str], None]


class ProvisionError(Exception):
    def __init__(self, server: str, what: str):
        super().__init__(f"{server}: {what}")
        self.server = server
        self.what = what


@dataclass
class Report:
    server: str
    instance: str
    action: str                      # "up" | "down"
    ok: bool = True
    changes: List[str] = field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0
    rolled_back: List[str] = field(default_factory=list)
    summary: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["n_changes"] = len(self.changes)
        return d


def make_backend(plan: Plan, image: Optional[str] = None, progress: Optional[Progress] = None):
    """The backend of `plan`: netns (named namespaces) or docker (containers; `image`, see image.py)."""
    if plan.backend == "netns":
        return NetnsBackend()
    if plan.backend == "docker":
        from .docker import DockerBackend
        return DockerBackend(plan, image=image, progress=progress)
    raise ValueError(f"unknown backend {plan.backend!r}")


class Provisioner:
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
        self._t0 = time.monotonic()
        self._lock = threading.Lock()                # FRR start-up runs in threads
        self._merging: Optional[bool] = None         # KSM on for the FRR we start (None: not asked yet)
        self._memory_note = 0.0                      # when "waits for memory" was last shown

    # ---- helpers ------------------------------------------------------------------------------
    def progress(self, msg: str) -> None:
        self._progress(f"[{self.plan.server}] {time.monotonic() - self._t0:5.1f}s {msg}")

    def _changed(self, items: List[str]) -> None:
        self.changes.extend(items)

    def _created(self, what: str, undo: Callable[[], None]) -> None:
        self.changes.append(f"created {what}")
        self._undo.append((what, undo))

    def _path(self, node_id: Optional[str]) -> Optional[str]:
        return None if node_id is None else self.backend.nspath(self.plan.node_by_id[node_id])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One run at a time per state root: an flock on the root directory itself (no lock file)."""
        with host.file_lock(os.path.dirname(os.path.dirname(self.plan.state_dir)), directory=True):
            yield

    def _report(self, action: str, t0: float) -> Report:
        return Report(server=self.plan.server, instance=self.plan.instance, action=action, changes=self.changes,
                      seconds=round(time.monotonic() - t0, 3), summary=self.plan.summary())

    # ---- preflight ----------------------------------------------------------------------------
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

    # ---- up -----------------------------------------------------------------------------------
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
                self._up_layer2()
                if self.plan.bridges:
                    self._up_underlay()
                    self._up_bridges()
                self._up_routers()
                services.up(self)           # DNS servers, resolv.conf (provision/services.py)
                self._remove_stale()
            except BaseException as exc:          # an interrupt (SIGINT/SIGTERM) rolls back too
                what = "interrupted" if isinstance(exc, KeyboardInterrupt) else self._bounded(_describe(exc))
                rolled = self._rollback()
                err = ProvisionError(self.plan.server, what)
                err.rolled_back = rolled          # type: ignore[attr-defined]
                raise err from exc
        return self._report("up", t0)

    def _rollback(self) -> List[str]:
        done = []
        for what, undo in reversed(self._undo):
            self.progress(f"rolling back: {what}")
            try:
                undo()
                done.append(what)
            except Exception as exc:        # keep undoing the rest
                self.progress(f"rollback of {what} failed: {_describe(exc)}")
        self._undo.clear()
        return done

    def _up_state_dir(self) -> None:
        sdir = self.plan.state_dir
        if not os.path.isdir(sdir):
            os.makedirs(sdir)
            self._created(f"state dir {sdir}", self._remove_state_dir)
        os.makedirs(self.plan.nodes_dir, exist_ok=True)

    def _read_marker(self, node: Node) -> Optional[dict]:
        try:
            with open(self.plan.marker_path(node)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _up_nodes(self) -> None:
        self.progress(f"{len(self.plan.nodes)} nodes")
        for node in self.plan.nodes:
            ident = self.backend.identity(node)
            if ident is None:
                ident = self.backend.create(node)
                _write_json(self.plan.marker_path(node), {
                    "instance": self.plan.instance, "server": self.plan.server, "node": node.id,
                    "name": node.ns, "backend": self.plan.backend, "identity": ident})
                self._created(f"node {node.ns}", lambda n=node, i=ident: self._delete_node(n, i))
            else:
                marker = self._read_marker(node)
                if not marker or marker.get("identity") != ident or marker.get("instance") != self.plan.instance:
                    raise ProvisionError(self.plan.server, f"{node.ns} exists but is not ours (no matching marker "
                                                           f"in {self.plan.nodes_dir}); remove it or rename the topology")
            self._identities[node.id] = ident
            path = self.backend.nspath(node)
            sysctls = ROUTER_SYSCTLS if node.kind == "router" else HOST_SYSCTLS
            self._changed(nlk.ensure_sysctls(path, sysctls, node.id))
            self._changed(nlk.ensure_loopback(self._nl, path, node))

    def _delete_node(self, node: Node, identity: str) -> None:
        if self._nl is not None:
            self._nl.forget(self.backend.nspath(node))
        self.backend.delete(node, identity)
        _remove(self.plan.marker_path(node))
        _rmdir(os.path.join(FRR_RUN_DIR, frr_pathspace(node.ns)))

    def _up_veths(self) -> None:
        self.progress(f"{len(self.plan.veths)} veth pairs")
        for veth in self.plan.veths:
            pa, pb = self._path(veth.a.node), self._path(veth.b.node)
            state = nlk.veth_state(self._nl, pa, pb, veth)
            created = False
            if state == "broken":
                self._clear_broken(veth, pa, pb)
                self._changed([f"removed broken veth {_label(veth.a)}/{_label(veth.b)}"])
            if state != "ok":
                nlk.create_veth(self._nl, pa, pb, veth)
                created = True
                self._created(f"veth {_label(veth.a)} -- {_label(veth.b)}",
                              lambda v=veth, p=pa: nlk.delete_link(self._nl, p, v.a.ifname))
            for end, path in ((veth.a, pa), (veth.b, pb)):
                # the controller may set a bridge port down (link failure): only bring it up when new
                bring_up = created or end.node is not None
                self._changed(nlk.ensure_iface(self._nl, path, end, _label(end), bring_up=bring_up))
                if end.node is None:      # a router-facing port: the server's kernel must ignore it
                    self._changed(nlk.ensure_port_guard(path, end.ifname, _label(end)))

    def _clear_broken(self, veth: Veth, pa: Optional[str], pb: Optional[str]) -> None:
        for end, path in ((veth.a, pa), (veth.b, pb)):
            if end.node is None:      # the server's namespace: only if it carries our mark
                if nlk.link_index(self._nl(path), end.ifname) is not None and \
                        not nlk.delete_link(self._nl, path, end.ifname, alias=end.alias):
                    raise ProvisionError(self.plan.server, f"interface {end.ifname} exists in the server's "
                                                           "namespace and is not ours")
            else:
                nlk.delete_link(self._nl, path, end.ifname)

    def _up_routes(self) -> None:
        for node in self.plan.nodes:
            if node.routes:
                self._changed(nlk.ensure_routes(self._nl, self.backend.nspath(node), node))
        for router in self.plan.routers:      # the AS prefix a configured router announces
            if router.configure and router.asn in self.plan.addressing:
                node = self.plan.node_by_id[router.node]
                self._changed(nlk.ensure_blackhole(self._nl, self.backend.nspath(node),
                                                   self.plan.addressing[router.asn].prefix, router.node))
            if router.configure and router.asn in self.plan.addressing6:      # dual stack
                node = self.plan.node_by_id[router.node]
                self._changed(nlk.ensure_blackhole(self._nl, self.backend.nspath(node),
                                                   self.plan.addressing6[router.asn].prefix, router.node))

    def _up_shaping(self) -> None:
        """IXP peering LANs (ixp.py), then tc on link interfaces (shaping.py); a kernel without
        netem gives one warning line."""
        from . import ixp, shaping
        self._changed(ixp.apply_plan(self.plan, self._path))      # IXP peering LANs (ports exist now)
        changes, warning = shaping.apply_plan(self.plan, self._path)
        self._changed(changes)
        if warning:
            self.progress(f"warning: {warning}")

    def _up_layer2(self) -> None:
        """Switches, router trunks and the tunnel (provision/layer2.py), once their veths exist."""
        if self.plan.layer2 is None:
            return
        from . import layer2
        self.progress(f"layer 2: {len(self.plan.layer2.bridges)} switches")
        self._changed(layer2.apply_plan(self.plan, self._path,
                                        lambda nid: self.backend.exec_args(self.plan.node_by_id[nid], [])))

    # ---- OvS ----------------------------------------------------------------------------------
    def _up_underlay(self) -> None:
        """On netdev, tunnels leave from an IP on an OvS internal port; put it there if needed."""
        u = self.plan.underlay
        if u is None or self.plan.datapath != "netdev":
            return
        ipr = self._nl(None)
        found = nlk.find_address(ipr, u.ip)
        state = ovs.read_state()
        if found and ovs.interface_type(state, found[0]) == "internal":
            return
        if found is None:
            raise ProvisionError(self.plan.server, f"underlay_ip {u.ip} is not configured on any interface "
                                                   "of this server")
        ifname, plen = found
        if not u.interface:
            raise ProvisionError(self.plan.server, f"underlay_ip {u.ip} is on {ifname}, which is not an Open vSwitch "
                                                   f"port; the userspace datapath needs it on one: set "
                                                   f"servers.{self.plan.server}.interface: {ifname} to let "
                                                   f"minet-provision move it onto bridge {u.bridge}")
        if ifname != u.interface:
            raise ProvisionError(self.plan.server, f"underlay_ip {u.ip} is on {ifname}, not on "
                                                   f"servers.{self.plan.server}.interface {u.interface}")
        cidr = f"{u.ip}/{plen}"
        self.progress(f"moving underlay {cidr} from {ifname} onto OvS bridge {u.bridge}")
        ovs.vsctl(*ovs.underlay_bridge_args(u.bridge, ifname, cidr, self.plan.marks, self.plan.datapath))
        self._created(f"underlay bridge {u.bridge}", lambda: self._restore_underlay(u.bridge))
        _move_address(ipr, ifname, u.bridge, cidr)

    def _restore_underlay(self, bridge: str) -> bool:
        state = ovs.read_state()
        row = state.bridges.get(bridge)
        if row is None or not ovs.is_marked(row, self.plan.marks):
            return False
        ifname = row["external_ids"].get(ovs.UNDERLAY_IFACE_KEY)
        cidr = row["external_ids"].get(ovs.UNDERLAY_ADDR_KEY)
        if ifname and cidr:
            ipr = self._nl(None)
            if nlk.link_index(ipr, bridge) is not None and nlk.link_index(ipr, ifname) is not None:
                _move_address(ipr, bridge, ifname, cidr)
        ovs.vsctl("--if-exists", "del-br", bridge)
        return True

    def _up_bridges(self) -> None:
        self.progress(f"{len(self.plan.bridges)} remote bridges")
        for bridge in self.plan.bridges:
            changes, created = ovs.ensure_bridge(bridge)
            if created:
                self._created(f"bridge {bridge.name}", lambda b=bridge: ovs.delete_bridge(b.name, self.plan.marks))
                changes = changes[1:]
            self._changed(changes)

    # ---- FRR ----------------------------------------------------------------------------------
    def _up_routers(self) -> None:
        if not self.plan.routers:
            return
        self.progress(f"{len(self.plan.routers)} FRR routers")
        self._changed(ensure_neighbour_limits(len(self.plan.routers)))
        uid, gid = self.backend.frr_ids()        # the frr user the daemons run as (a container's own)
        if self.backend.uses_host_frr and not os.path.isdir(FRR_RUN_DIR):
            os.makedirs(FRR_RUN_DIR, exist_ok=True)
            os.chown(FRR_RUN_DIR, uid, gid)
        to_start: List[Tuple[Router, List[str]]] = []
        for router in self.plan.routers:
            ident = self._identities[router.node]
            new_dir = not os.path.isdir(router.confdir)
            os.makedirs(router.confdir, exist_ok=True)
            os.chown(router.confdir, uid, gid)
            if new_dir:
                self._undo.append((f"config dir {router.confdir}",
                                   lambda d=router.confdir: shutil.rmtree(d, ignore_errors=True)))
            # vtysh run with --config_dir <router dir> (names.vtysh_argv, `minet exec`) reads its
            # vtysh.conf there: an empty one, so that it does not complain on every call
            vtysh_conf = os.path.join(router.confdir, VTYSH_CONF)
            if not os.path.exists(vtysh_conf):
                _write_if_changed(vtysh_conf, "", uid, gid)
            # A student's router (configure: false) owns its frr.conf once it exists: `write memory`
            # saves there, and re-provisioning must neither overwrite it nor restart FRR.
            if router.configure or not os.path.exists(router.conf_path):
                conf_changed = _write_if_changed(router.conf_path, router.config, uid, gid)
            else:
                conf_changed = False
            running = {d: self._daemon_pid(router, d, ident) for d in ALL_DAEMONS}
            unwanted = [pid for d, pid in running.items() if pid and d not in router.daemons]
            if unwanted:                 # a daemon an earlier plan ran that this one does not need
                stop_processes(unwanted)
                self.changes.append(f"{router.node}: stopped {len(unwanted)} daemons it no longer needs")
            if conf_changed:
                self.changes.append(f"{router.node}: frr.conf written")
                live = [pid for d, pid in running.items() if pid and d in router.daemons]
                if live:
                    stop_processes(live)
                    self.changes.append(f"{router.node}: FRR restarted for the new configuration")
                    running = {d: None for d in ALL_DAEMONS}
            missing = [d for d in router.daemons if not running[d]]
            if "zebra" in missing and len(missing) < len(router.daemons):
                # the daemons that outlived zebra never hand a new zebra their routes (ospfd's
                # stay out of the RIB, iBGP to loopbacks stays down): restart the router as a set
                stop_processes([running[d] for d in router.daemons if running[d]])
                self.changes.append(f"{router.node}: FRR restarted as a set (zebra was gone)")
                missing = list(router.daemons)
            if missing:
                to_start.append((router, missing))
        self._start_routers(to_start)

    def _daemon_pid(self, router: Router, daemon: str, ident: str) -> Optional[int]:
        try:
            with open(router.pid_path(daemon)) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            return None
        pid = self.backend.host_pid(pid, ident)    # pid files hold the pid as the node sees it
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/comm") as fh:
                return pid if fh.read().strip() == daemon else None
        except OSError:
            return None

    def _start_routers(self, to_start: List[Tuple[Router, List[str]]]) -> None:
        """Start the daemons of many routers, `start_jobs()` routers at a time.

        Per router: zebra first, ready (its pid file names a live zebra and its zserv socket
        exists), then the others together, each ready when its pid file names it. Each daemon has
        its own deadline (DAEMON_READY_TIMEOUT from its own start), so a slow machine makes
        start-up slower, not wrong. After FAIL_STOP failures no further routers are tried.
        """
        if not to_start:
            return
        self._merge_pages([router for router, _ in to_start])
        jobs = start_jobs()
        total_daemons = sum(len(ds) for _, ds in to_start)
        self.progress(f"FRR: starting {total_daemons} daemons of {len(to_start)} routers, {jobs} routers at a time")
        stop = threading.Event()
        failures: List[DaemonFailure] = []
        done = [0, 0]                      # routers finished, daemons started
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="frr-start") as pool:
            futures = {pool.submit(self._start_router, router, daemons, stop): (router, daemons)
                       for router, daemons in to_start}
            pending = set(futures)
            last_note = time.monotonic()
            try:
                while pending:
                    finished, pending = wait(pending, timeout=1.0)
                    for fut in finished:
                        router, daemons = futures[fut]
                        if fut.cancelled():
                            continue
                        started, failed = fut.result()
                        done[0] += 1
                        done[1] += started
                        failures += failed
                    if len(failures) >= FAIL_STOP and not stop.is_set():
                        stop.set()
                        for fut in pending:
                            fut.cancel()
                    now = time.monotonic()
                    if pending and now - last_note >= PROGRESS_EVERY:
                        last_note = now
                        rate = done[0] / (now - t0)
                        eta = f", ETA {len(pending) / rate:.0f} s" if rate > 0 else ""
                        self.progress(f"FRR: {done[0]}/{len(to_start)} routers started "
                                      f"({done[1]}/{total_daemons} daemons{eta})")
            except BaseException:
                stop.set()
                for fut in pending:
                    fut.cancel()
                raise
        self.progress(f"FRR: {done[0]}/{len(to_start)} routers, {done[1]}/{total_daemons} daemons started "
                      f"in {time.monotonic() - t0:.1f} s")
        if failures:
            raise ProvisionError(self.plan.server, self._failure_summary(failures, total_daemons))

    def _merge_pages(self, routers: List[Router]) -> None:
        """Opt this process into KSM before it starts FRR (fabric.share_memory), once."""
        if self._merging is not None:
            return
        self._merging = False
        if not (self.backend.merges_pages and any(r.share_memory for r in routers)):
            return
        if not shutil.which("setarch"):
            self.progress("FRR memory sharing is off: setarch (util-linux) is missing")
            return
        merging = host.page_merging()
        self._changed(list(merging.changes))
        self._merging = merging.on
        if not merging.on:
            self.progress(f"FRR memory sharing is off: {merging.why_not}")

    def _start_router(self, router: Router, daemons: List[str], stop: threading.Event
                      ) -> Tuple[int, List["DaemonFailure"]]:
        if stop.is_set():
            return 0, [DaemonFailure(router.node, d, "not tried (too many failures before)", False)
                       for d in daemons]
        if self._merging:
            why = self._wait_for_memory(router, stop)
            if why:
                return 0, [DaemonFailure(router.node, d, why, False) for d in daemons]
        started = 0
        failures: List[DaemonFailure] = []
        waves = [[d for d in daemons if d == "zebra"], [d for d in daemons if d != "zebra"]]
        for wave in waves:
            procs = [(d, self._spawn(router, d)) for d in wave]
            for daemon, (proc, t_start) in procs:
                why = self._await_ready(router, daemon, proc, t_start, stop)
                if why is None:
                    started += 1
                else:
                    failures.append(DaemonFailure(router.node, daemon, why))
            if failures:                   # without zebra the others cannot work: do not start them
                rest = [d for w in waves[waves.index(wave) + 1:] for d in w]
                failures += [DaemonFailure(router.node, d, "not started: zebra did not start", False)
                             for d in rest]
                break
        return started, failures

    def _wait_for_memory(self, router: Router, stop: threading.Event,
                         available: Callable[[], Optional[float]] = capacity.available_mb) -> Optional[str]:
        """None once MemAvailable is at least MEMORY_LOW_MB (see there), else why not."""
        t0 = time.monotonic()
        noted = False
        while True:
            mb = available()
            if mb is None or mb >= MEMORY_LOW_MB:
                return None
            if stop.is_set():
                return "not started (too many failures before)"
            waited = time.monotonic() - t0
            if waited >= MEMORY_WAIT:
                return (f"not started: {mb:.0f} MB of memory available, under {MEMORY_LOW_MB:.0f} MB for "
                        f"{waited:.0f} s while KSM merged pages")
            if not noted:
                noted = True
                with self._lock:
                    if time.monotonic() - self._memory_note >= PROGRESS_EVERY:
                        self._memory_note = time.monotonic()
                        self.progress(f"FRR: {router.node} waits for memory ({mb:.0f} MB available, "
                                      f"under {MEMORY_LOW_MB:.0f} MB): KSM is merging the routers started")
            stop.wait(1.0)

    def _spawn(self, router: Router, daemon: str) -> Tuple[subprocess.Popen, float]:
        node = self.plan.node_by_id[router.node]
        _remove(router.pid_path(daemon))
        argv = self.backend.exec_args(node, router.daemon_args(daemon, node.ns, self.frr_dir,
                                                                  merging=bool(self._merging)))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        return proc, time.monotonic()

    def _await_ready(self, router: Router, daemon: str, proc: subprocess.Popen, t_start: float,
                     stop: threading.Event) -> Optional[str]:
        """None once `daemon` of `router` is ready, else why not (its own output or log line)."""
        ident = self._identities[router.node]
        deadline = t_start + DAEMON_READY_TIMEOUT
        # `-d`: the parent exits once the daemon has read its configuration
        while proc.poll() is None and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0] or ""
        pid = None
        while True:
            pid = self._daemon_pid(router, daemon, ident)
            ready = pid is not None and (daemon != "zebra" or os.path.exists(router.zserv_path))
            if ready or proc.returncode != 0 or time.monotonic() >= deadline or stop.is_set():
                break
            time.sleep(0.05)
        if pid:
            with self._lock:
                self._created(f"{router.node}: {daemon} (pid {pid})",
                              lambda p=pid, i=ident: self.backend.process_in(p, i) and stop_processes([p]))
            if ready:
                return None
            return f"no zserv socket {router.zserv_path} after {DAEMON_READY_TIMEOUT:g} s"
        if stop.is_set():
            return "interrupted"
        lines = [l.strip() for l in out.splitlines() if l.strip() and "-z option overrides -N" not in l]
        log_line = _last_log_line(os.path.join(router.confdir, f"{daemon}.log"))
        if proc.returncode == -9 and time.monotonic() >= deadline:
            why = f"not ready after {DAEMON_READY_TIMEOUT:g} s (killed)"
        elif lines:
            why = lines[-1]
        else:
            why = f"exit status {proc.returncode}"
        return f"{why}; log: {log_line}" if log_line and log_line not in why else why

    def error_log_path(self) -> str:
        """Where the full text of an error too long for one line goes (it survives the rollback)."""
        root = os.path.dirname(os.path.dirname(self.plan.state_dir))
        return os.path.join(root, f"{self.plan.instance}.{self.plan.server}.error.log")

    def _bounded(self, what: str) -> str:
        """`what` as one line of at most ERROR_LINE_LIMIT characters; a longer or multi-line
        text is written whole to error_log_path() and the line names that file."""
        line = " ".join(what.split())
        if len(line) <= ERROR_LINE_LIMIT and "\n" not in what:
            return line
        path = self.error_log_path()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(what + "\n")
            where = f"full text in {path}"
        except OSError as exc:
            where = f"full text not saved: {exc.strerror or exc}"
        return clip_line(line, ERROR_LINE_LIMIT - len(where) - 3) + f" ({where})"

    def failure_log_path(self) -> str:
        """Where the full list of daemons that did not start goes (it survives the rollback)."""
        root = os.path.dirname(os.path.dirname(self.plan.state_dir))
        return os.path.join(root, f"{self.plan.instance}.{self.plan.server}.frr-start-failures.log")

    def _failure_summary(self, failures: List["DaemonFailure"], total: int) -> str:
        path = self.failure_log_path()
        try:
            with open(path, "w") as fh:
                fh.write(f"# {time.strftime('%F %T')} {self.plan.instance} server {self.plan.server}: "
                         f"{len(failures)} of {total} FRR daemons did not start\n")
                for f in failures:
                    fh.write(f"router {f.router} {f.daemon}: {f.why}\n")
        except OSError as exc:
            path = f"(not written: {exc.strerror})"
        return summarise_failures(failures, total, path)

    # ---- stale things from an earlier plan ------------------------------------------------------
    def _stale_nodes(self) -> List[Tuple[Node, dict]]:
        """Nodes with our marker file that the plan no longer has."""
        planned = {n.ns for n in self.plan.nodes}
        out = []
        try:
            names = sorted(os.listdir(self.plan.nodes_dir))
        except FileNotFoundError:
            return []
        for fname in names:
            if not fname.endswith(".json") or fname[:-5] in planned:
                continue
            try:
                with open(os.path.join(self.plan.nodes_dir, fname)) as fh:
                    marker = json.load(fh)
                node = Node(id=marker["node"], kind="?", asn=0, ns=marker["name"], forwarding=False)
            except (OSError, ValueError, KeyError):
                continue
            out.append((node, marker))
        return out

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

    # ---- down ---------------------------------------------------------------------------------
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

    def _remove_state_dir(self) -> None:
        """The server's state dir is all ours; its parent (the instance's) goes when empty."""
        shutil.rmtree(self.plan.state_dir, ignore_errors=True)
        _rmdir(os.path.dirname(self.plan.state_dir))


# ---- small helpers ------------------------------------------------------------------------------

def _label(iface: Iface) -> str:
    return f"{iface.node}:{iface.ifname}" if iface.node else iface.ifname


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProvisionError):
        return exc.what
    if isinstance(exc, (NetlinkProblem, ovs.OvsProblem, ImageProblem)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


VTYSH_CONF = "vtysh.conf"


def _write_if_changed(path: str, text: str, uid: int, gid: int) -> bool:
    try:
        with open(path) as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chown(tmp, uid, gid)
    os.replace(tmp, path)
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _move_address(ipr, src: str, dst: str, cidr: str) -> None:
    """Move `cidr` and the routes through it from interface `src` to `dst` (brought up, same MTU)."""
    si, di = nlk.link_index(ipr, src), nlk.link_index(ipr, dst)
    iface = ipaddress.ip_interface(cidr)
    routes = [r for r in ipr.route("dump", family=socket.AF_INET, table=254)
              if r.get_attr("RTA_OIF") == si and r.get_attr("RTA_GATEWAY")]
    ipr.link("set", index=di, mtu=nlk.link_info(ipr, si)["mtu"], state="up")
    ipr.addr("del", index=si, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    ipr.addr("add", index=di, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    for r in routes:
        dst_addr = r.get_attr("RTA_DST") or "0.0.0.0"
        kw = {"dst": f"{dst_addr}/{r['dst_len']}", "gateway": r.get_attr("RTA_GATEWAY"), "oif": di}
        if r.get_attr("RTA_PRIORITY") is not None:
            kw["priority"] = r.get_attr("RTA_PRIORITY")
        try:
            ipr.route("replace", **kw)
        except Exception as exc:      # report, but the address move itself succeeded
            print(f"warning: could not move route {kw['dst']} via {kw['gateway']}: {exc}", file=sys.stderr)


def up(plan: Plan, progress: Optional[Progress] = None) -> Report:
    return Provisioner(plan, progress).up()


def down(plan: Plan, progress: Optional[Progress] = None) -> Report:
    return Provisioner(plan, progress).down()
