"""The embedded lab's emulated servers: names, paths and start/stop primitives.

On one machine, every server of a topology becomes a network namespace with its own Open vSwitch
(ovsdb-server + ovs-vswitchd, userspace datapath) and its own sshd; the servers are joined by an
underlay (a Linux bridge in namespace `<tag>-ul`) and a management network (a Linux bridge in
namespace `<tag>-mgmt`, where the controller and the SSH client of master mode run).

Everything a lab makes is recorded in `<state>/lab.json` as soon as it exists, so `teardown`
removes exactly that (and nothing with a merely similar name), even after a failure half-way.

Layout (state = /run/minet-sdn/<topology name>, or $MINET_LAB_ROOT/<name>):
    state/lab.json                what exists (namespaces, processes, addresses)
    state/topology.yaml           the EFFECTIVE topology: controller and ssh on the mgmt network
    state/ssh/id_ed25519[.pub]    the lab's client key; state/ssh/known_hosts: every server's host key
    state/<server>/               OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR of that server:
                                  conf.db db.sock ovsdb-server.pid ovs-vswitchd.pid *.log *.mgmt
    state/<server>/ssh/           sshd_config, host key, authorized_keys, sshd.pid, sshd.log
    state/<server>/provision/     MINET_STATE_DIR of that server (provisioning's own state)

Networks (defaults; the mgmt subnet is an option of `lab up`):
    mgmt   10.254.0.0/24: .1 is the mgmt namespace (on bridge <tag>-mbr), .1+i is server i
           (1-based index in the topology), on veth <tag>-mg in the server's namespace.
    ul     the servers' `underlay_ip`s: veth <tag>-ul in the server's namespace is a port of the
           OvS netdev bridge <tag>-phy, whose internal port holds underlay_ip with the shortest
           prefix covering every server's underlay_ip (a connected route: OvS's tunnel routing
           ignores host routes; IPv4 or IPv6, added without DAD); MTU `fabric.underlay_mtu` on
           every underlay port (bridge <tag>-ubr in <tag>-ul).

Daemons that may create namespaces (sshd, hence provisioning over SSH) are started with
`nsenter --net` only, never `ip netns exec`: the latter gives its children a private mount
namespace, and `ip netns add` run there would not be visible to the rest of the machine.
"""
from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import yaml

from ..topology import Topology, TopologyError, load_topology
from .. import host
from ..topology import names

DEFAULT_ROOT = "/run/minet-sdn"
DEFAULT_MGMT_SUBNET = "10.254.0.0/24"
UNDERLAY_MTU = 9000
SSH_PORT = 22
NETNS_DIR = "/run/netns"
OVS_SCHEMA = host.OVS_SCHEMA
SSHD = "/usr/sbin/sshd"
STATE_VERSION = 1

Progress = Callable[[str], None]


class LabError(Exception):
    """A lab operation failed; the message is one line meant for the user."""


def _quiet(_msg: str) -> None:
    pass


# ---- names and paths ------------------------------------------------------------------------

def lab_root() -> str:
    return os.environ.get("MINET_LAB_ROOT", DEFAULT_ROOT)


def state_dir(topo: Topology) -> str:
    return os.path.join(lab_root(), topo.name)


def lab_json_path(topo: Topology) -> str:
    return os.path.join(state_dir(topo), "lab.json")


def effective_topology_path(topo: Topology) -> str:
    return os.path.join(state_dir(topo), "topology.yaml")


def server_dir(topo: Topology, server: str) -> str:
    """The server's OvS directory (OVS_RUNDIR and friends) and the parent of its other state."""
    return os.path.join(state_dir(topo), server)


def server_ssh_dir(topo: Topology, server: str) -> str:
    return os.path.join(server_dir(topo, server), "ssh")


def provision_state_dir(topo: Topology, server: str) -> str:
    """MINET_STATE_DIR of `server` (what provisioning run on that server keeps)."""
    return os.path.join(server_dir(topo, server), "provision")


def client_key_path(topo: Topology) -> str:
    return os.path.join(state_dir(topo), "ssh", "id_ed25519")


def known_hosts_path(topo: Topology) -> str:
    return os.path.join(state_dir(topo), "ssh", "known_hosts")


# the lab's namespace, bridge and interface names: topology/names.py
mgmt_ns, underlay_ns, server_ns = names.mgmt_ns, names.underlay_ns, names.server_ns
mgmt_bridge, underlay_bridge, phy_bridge = names.mgmt_bridge, names.underlay_bridge, names.phy_bridge
underlay_ifname, mgmt_ifname = names.underlay_ifname, names.mgmt_ifname
underlay_peer_ifname, mgmt_peer_ifname = names.underlay_peer_ifname, names.mgmt_peer_ifname


ovs_env = host.ovs_env


def server_env(topo: Topology, server: str) -> Dict[str, str]:
    """What a command run "on" `server` needs: its OvS and its provisioning state dir."""
    env = ovs_env(server_dir(topo, server))
    env["MINET_STATE_DIR"] = provision_state_dir(topo, server)
    return env


def mgmt_network(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"management subnet {subnet!r}: {exc}")
    if net.version != 4:
        raise LabError(f"management subnet {subnet}: must be IPv4")
    return net


def mgmt_addresses(topo: Topology, subnet: str = DEFAULT_MGMT_SUBNET) -> Dict[str, str]:
    """{"mgmt": .1, <server>: .1+index}: the management address of every lab node."""
    net = mgmt_network(subnet)
    need = 2 + len(topo.servers)          # mgmt ns + servers, plus the broadcast address
    highest = max((s.index for s in topo.servers.values()), default=0)
    if net.num_addresses < highest + 3:
        raise LabError(f"management subnet {subnet} is too small for {len(topo.servers)} servers "
                       f"(needs at least {need + 1} addresses)")
    base = int(net.network_address)
    out = {"mgmt": str(ipaddress.IPv4Address(base + 1))}
    for name, server in topo.servers.items():
        out[name] = str(ipaddress.IPv4Address(base + 1 + server.index))
    return out


def check_addressing(topo: Topology, subnet: str) -> None:
    """Refuse a management subnet that clashes with the topology's own addresses."""
    net = mgmt_network(subnet)
    for name, server in topo.servers.items():
        ip = ipaddress.ip_address(server.underlay_ip)
        if ip.version == 4 and ip in net:
            raise LabError(f"servers.{name}.underlay_ip {ip} is inside the lab's management subnet "
                           f"{net}; choose another with --mgmt-subnet")
        if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
            raise LabError(f"servers.{name}.underlay_ip {ip} cannot be an underlay address in the lab")
    if net.overlaps(ipaddress.ip_network(topo.fabric.link_subnet)):
        raise LabError(f"the lab's management subnet {net} overlaps fabric.link_subnet "
                       f"{topo.fabric.link_subnet}; choose another with --mgmt-subnet")


# ---- the effective topology -----------------------------------------------------------------

def effective_topology_text(topo_path: str, topo: Topology, addresses: Dict[str, str]) -> str:
    """The user's topology with the controller and every server's ssh on the lab's mgmt network."""
    with open(topo_path, "r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    mgmt_ip = addresses["mgmt"]
    data["controller"] = {"ofp": f"{mgmt_ip}:{topo.controller.ofp_port}",
                          "rest": f"{mgmt_ip}:{topo.controller.rest_port}"}
    if isinstance(data["servers"], list):     # `servers: [VM1, VM2]`: the addresses the loader numbered
        data["servers"] = {name: {"underlay_ip": topo.servers[name].underlay_ip} for name in data["servers"]}
    for name in data["servers"]:
        spec = dict(data["servers"][name] or {})
        spec["ssh"] = f"root@{addresses[name]}:{SSH_PORT}"
        spec["interface"] = underlay_ifname(topo)
        data["servers"][name] = spec
    header = (f"# Effective topology of the lab '{topo.name}', derived from {os.path.abspath(topo_path)}\n"
              f"# (controller and ssh on the lab's management network). Generated; do not edit.\n")
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def write_effective_topology(topo_path: str, topo: Topology, addresses: Dict[str, str]) -> str:
    path = effective_topology_path(topo)
    text = effective_topology_text(topo_path, topo, addresses)
    _write_atomic(path, text)
    try:
        load_topology(path)
    except TopologyError as exc:        # a bug of ours, not the user's
        raise LabError(f"the effective topology {path} does not load: {exc.problems[0]}")
    return path


# ---- running commands -----------------------------------------------------------------------

def run(argv: Sequence[str], *, env: Optional[Dict[str, str]] = None, input: Optional[str] = None,
        timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    """Run `argv`; on failure raise LabError with the command and its last stderr line."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(list(argv), env=full_env, input=input, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found (is it installed?)")
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:g} s")
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {_last_line(proc.stderr or proc.stdout)}")
    return proc


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def nsenter_argv(ns: str, argv: Sequence[str]) -> List[str]:
    """Run `argv` in network namespace `ns` only (same mount namespace, unlike `ip netns exec`)."""
    return names.nsenter_prefix(os.path.join(NETNS_DIR, ns)) + list(argv)


def ip(ns: Optional[str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run((["ip", "-n", ns] if ns else ["ip"]) + list(args), check=check)


def ip_batch(ns: str, commands: Sequence[str]) -> None:
    run(["ip", "-n", ns, "-batch", "-"], input="\n".join(commands) + "\n")


def ovs_vsctl(directory: str, *args: str, timeout: float = 20) -> str:
    return run(["ovs-vsctl", f"--db=unix:{directory}/db.sock", f"--timeout={int(timeout)}", *args],
               env=ovs_env(directory), timeout=timeout + 5).stdout


# ---- network namespaces ---------------------------------------------------------------------

def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def create_netns(name: str) -> None:
    if netns_exists(name):
        raise LabError(f"network namespace {name} already exists and is not part of this lab")
    run(["ip", "netns", "add", name])
    ip(name, "link", "set", "lo", "up")


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "delete", name], check=False)


def netns_pids(name: str) -> List[int]:
    if not netns_exists(name):
        return []
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(x) for x in proc.stdout.split() if x.isdigit()]


def netns_socket(ns: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside network namespace `ns` (usable from any thread afterwards)."""
    return host.in_netns(os.path.join(NETNS_DIR, ns), lambda: socket.socket(family, type))


def netns_connect(ns: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = netns_socket(ns, family)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def wait_tcp(ns: str, host: str, port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            netns_connect(ns, host, port, timeout=1.0).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


# ---- processes ------------------------------------------------------------------------------

proc_starttime = host.proc_starttime
_reap = host.reap


def proc_record(name: str, pid: int, pidfile: Optional[str] = None) -> Dict[str, object]:
    return {"name": name, "pid": pid, "start": proc_starttime(pid), "pidfile": pidfile}


def proc_alive(record: Dict[str, object]) -> bool:
    """The recorded process still runs (same start time: not a recycled pid; zombies count as gone)."""
    pid = int(record["pid"])
    start = proc_starttime(pid)
    if start is None or (record.get("start") is not None and start != record["start"]):
        return False
    return host.pid_alive(pid)


def stop_process(record: Dict[str, object], timeout: float = 5.0) -> None:
    """SIGTERM the recorded process (if it is still the same one), then SIGKILL after `timeout`."""
    if proc_alive(record):
        host.stop_processes([int(record["pid"])], timeout, alive=lambda _pid: proc_alive(record))


def read_pidfile(path: str, timeout: float = 5.0) -> int:
    pid = host.read_pidfile(path, timeout)
    if pid is None:
        raise LabError(f"no live process in pid file {path} after {timeout:g} s")
    return pid


def spawn_daemon(argv: Sequence[str], log_path: str, *, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None) -> int:
    """Start `argv` detached (own session, stdin /dev/null, output to `log_path`); its pid."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
        proc = subprocess.Popen(list(argv), stdin=null, stdout=log, stderr=subprocess.STDOUT,
                                env=full_env, cwd=cwd, start_new_session=True, close_fds=True)
    _detach_popen(proc)
    return proc.pid


def _detach_popen(proc: subprocess.Popen) -> None:
    # The Popen object is dropped; the zombie, if any, is reaped by stop_process/_reap.
    proc.returncode = 0  # keeps Popen.__del__ from warning; we reap by pid ourselves


# ---- the state file -------------------------------------------------------------------------

def _write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class LabState:
    """lab.json: every namespace, process, bridge and address the lab made, written as it goes."""

    def __init__(self, path: str, data: Dict[str, object]):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, topo: Topology) -> Optional["LabState"]:
        path = lab_json_path(topo)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            raise LabError(f"unreadable lab state {path}: {exc}; remove it by hand if the lab is gone")
        problem = _lab_state_problem(data)
        if problem:
            raise LabError(f"unreadable lab state {path}: {problem}; remove it by hand if the lab is gone")
        return cls(path, data)

    def save(self) -> None:
        _write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=False) + "\n")

    # accessors (the defaults live here, once)
    @property
    def backend(self) -> str:
        """How the lab's nodes are made: "netns" (the default) or "docker"."""
        return str(self.data.get("backend") or "netns")

    @property
    def image(self) -> Optional[str]:
        """The docker backend's image, as `lab up` resolved it (None: the default)."""
        image = self.data.get("image")
        return str(image) if image else None

    @property
    def namespaces(self) -> List[str]:
        return self.data.setdefault("namespaces", [])  # type: ignore[return-value]

    @property
    def processes(self) -> List[Dict[str, object]]:
        return self.data.setdefault("processes", [])  # type: ignore[return-value]

    @property
    def servers(self) -> Dict[str, Dict[str, object]]:
        return self.data.setdefault("servers", {})  # type: ignore[return-value]

    def add_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def add_process(self, record: Dict[str, object]) -> None:
        self.processes[:] = [p for p in self.processes if p["name"] != record["name"]]
        self.processes.append(record)
        self.save()

    def process(self, name: str) -> Optional[Dict[str, object]]:
        for p in self.processes:
            if p["name"] == name:
                return p
        return None

    def drop_process(self, name: str) -> None:
        self.processes[:] = [p for p in self.processes if p["name"] != name]
        self.save()


def _lab_state_problem(data: object) -> Optional[str]:
    """What makes `data` (lab.json as parsed) not a lab state, or None: the shape its readers assume."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    def bad(key: str, what: str) -> str:
        return f"{key} is {json.dumps(data[key])[:40]}, not {what}"
    for key in ("topology", "effective_topology", "phase", "backend", "image", "rest_relay", "mgmt_subnet",
                "topology_sha256"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return bad(key, "a string")
    for key in ("mgmt", "controller", "ssh"):
        if key in data and not isinstance(data[key], dict):
            return bad(key, "an object")
    if "namespaces" in data and not (isinstance(data["namespaces"], list)
                                     and all(isinstance(n, str) for n in data["namespaces"])):
        return bad("namespaces", "a list of names")
    if "processes" in data:
        procs = data["processes"]
        if not (isinstance(procs, list) and all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                                and isinstance(p.get("pid"), int) for p in procs)):
            return bad("processes", "a list of {name, pid}")
    if "servers" in data:
        servers = data["servers"]
        if not (isinstance(servers, dict) and all(isinstance(v, dict) for v in servers.values())):
            return bad("servers", "an object of servers")
    return None


def topology_digest(topo_path: str) -> str:
    with open(topo_path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@contextlib.contextmanager
def lab_lock(topo: Topology) -> Iterator[None]:
    """Serialise up/down of one lab (a second `lab up` waits for none: it fails at once)."""
    os.makedirs(lab_root(), mode=0o755, exist_ok=True)
    path = os.path.join(lab_root(), f".{topo.name}.lock")
    try:
        with host.file_lock(path, blocking=False):
            try:
                yield
            finally:
                if not os.path.exists(state_dir(topo)):     # no lab (down, or a failed up): no lock file
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    with contextlib.suppress(OSError):
                        os.rmdir(lab_root())                # only if no other lab is left
    except host.Busy:
        raise LabError(f"another `lab up` or `lab down` of {topo.name} is running") from None


# ---- preconditions --------------------------------------------------------------------------

REQUIRED_TOOLS = ("ip", "nsenter", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd",
                  "ovs-vsctl", "ssh-keygen")


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, Open vSwitch, sshd)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if not os.path.exists(SSHD):
        missing.append(SSHD)
    if not os.path.exists(OVS_SCHEMA):
        missing.append(OVS_SCHEMA)
    if missing:
        raise LabError(f"missing on this machine: {', '.join(missing)} "
                       f"(apt-get install openvswitch-switch openssh-server iproute2 ethtool util-linux)")


def planned_namespaces(topo: Topology) -> List[str]:
    return [mgmt_ns(topo), underlay_ns(topo)] + [server_ns(topo, s) for s in topo.servers]


# ---- building the emulated servers ----------------------------------------------------------

@dataclass
class ServersInfo:
    state: LabState
    addresses: Dict[str, str]
    effective_topology: str


def _disable_offloads(ns: str, ifname: str) -> None:
    # TCP through the userspace datapath stalls with TX checksum/segmentation offload on.
    run(nsenter_argv(ns, ["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off"]), check=False)


def start_ovs(topo: Topology, server: str, state: LabState) -> None:
    """ovsdb-server and ovs-vswitchd of `server`, inside its namespace, in its own directory."""
    def started(daemon: str, pidfile: str) -> None:
        state.add_process(proc_record(f"{server}/{daemon}", read_pidfile(pidfile), pidfile))

    host.start_ovs(server_dir(topo, server), names.exec_prefix("netns", server_ns(topo, server)),
                   lambda argv: run(argv), started)


def underlay_prefixlen(topo: Topology, version: int) -> int:
    """Length of the smallest prefix holding the underlay address of every server (of a version)."""
    addrs = [ipaddress.ip_address(s.underlay_ip) for s in topo.servers.values()]
    addrs = [a for a in addrs if a.version == version]
    bits = addrs[0].max_prefixlen
    plen = bits
    while plen > 0 and len({int(a) >> (bits - plen) for a in addrs}) > 1:
        plen -= 1
    return plen


def underlay_mtu(topo: Topology) -> int:
    """The emulated underlay has the topology's `fabric.underlay_mtu`, so the tunnel overhead the
    model subtracts (for an IPv4 or IPv6 outer header) is checked against a real limit."""
    return topo.fabric.underlay_mtu


def build_underlay(topo: Topology, server: str, state: LabState) -> None:
    """<tag>-ul (veth, port of the OvS netdev bridge <tag>-phy) and the underlay IP on <tag>-phy."""
    d = server_dir(topo, server)
    ns = server_ns(topo, server)
    ul, peer, phy = underlay_ifname(topo), underlay_peer_ifname(topo, server), phy_bridge(topo)
    uns = underlay_ns(topo)
    mtu = underlay_mtu(topo)
    ip(ns, "link", "add", ul, "mtu", str(mtu), "type", "veth", "peer", "name", peer,
       "mtu", str(mtu), "netns", uns)
    ip_batch(uns, [f"link set {peer} master {underlay_bridge(topo)}", f"link set {peer} up"])
    ip(ns, "link", "set", ul, "up")
    _disable_offloads(ns, ul)
    _disable_offloads(uns, peer)
    ovs_vsctl(d, "--may-exist", "add-br", phy, "--", "set", "bridge", phy, "datapath_type=netdev",
              f"external_ids:minet-lab={topo.name}", "external_ids:minet-role=underlay",
              "--", "--may-exist", "add-port", phy, ul,
              "--", "set", "interface", phy, f"mtu_request={mtu}")
    me = ipaddress.ip_address(topo.servers[server].underlay_ip)
    # A connected prefix covering every server: OvS's tunnel routing ignores host routes whose
    # destination no address of the device covers, so /32 plus host routes would black-hole GRE.
    plen = underlay_prefixlen(topo, me.version)
    nodad = " nodad" if me.version == 6 else ""     # usable at once (a tentative address is not)
    ip_batch(ns, [f"link set {phy} mtu {mtu} up", f"addr add {me}/{plen} dev {phy}{nodad}"])
    _disable_offloads(ns, phy)
    srv = state.servers[server]
    srv.update(underlay_if=ul, underlay_peer_if=peer, phy_bridge=phy)
    state.save()


def build_mgmt(topo: Topology, server: str, state: LabState, address: str, prefixlen: int) -> None:
    ns, mns = server_ns(topo, server), mgmt_ns(topo)
    mg, peer = mgmt_ifname(topo), mgmt_peer_ifname(topo, server)
    ip(ns, "link", "add", mg, "type", "veth", "peer", "name", peer, "netns", mns)
    ip_batch(mns, [f"link set {peer} master {mgmt_bridge(topo)}", f"link set {peer} up"])
    ip_batch(ns, [f"addr add {address}/{prefixlen} dev {mg}", f"link set {mg} up"])
    state.servers[server].update(mgmt_if=mg, mgmt_peer_if=peer)
    state.save()


def make_client_key(topo: Topology) -> None:
    key = client_key_path(topo)
    os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
    if not os.path.exists(key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"minet-lab-{topo.name}", "-f", key])


def sshd_config_text(topo: Topology, server: str, address: str) -> str:
    sd = server_ssh_dir(topo, server)
    env = server_env(topo, server)
    # Commands over SSH must find the same Python (and minet-provision) as the lab itself.
    path = os.pathsep.join(dict.fromkeys([os.path.dirname(os.path.realpath(sys.executable)),
                                          os.path.dirname(sys.executable),
                                          "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                          "/usr/bin", "/sbin", "/bin"]))
    setenv = " ".join(f"{k}={v}" for k, v in list(env.items()) + [("PATH", path)])
    return "\n".join([
        f"# sshd of the emulated server {server} of the lab {topo.name} (generated)",
        f"ListenAddress {address}:{SSH_PORT}",
        f"HostKey {sd}/ssh_host_ed25519_key",
        f"PidFile {sd}/sshd.pid",
        f"AuthorizedKeysFile {sd}/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AllowUsers root",
        "StrictModes yes",
        "PermitUserEnvironment no",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        "PrintMotd no",
        "UseDNS no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",
        f"SetEnv {setenv}",
        "",
    ])


def start_sshd(topo: Topology, server: str, state: LabState, address: str) -> None:
    """sshd of `server`, listening on its mgmt address only, started inside its namespace."""
    sd = server_ssh_dir(topo, server)
    os.makedirs(sd, mode=0o700, exist_ok=True)
    hostkey = f"{sd}/ssh_host_ed25519_key"
    if not os.path.exists(hostkey):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{topo.name}-{server}", "-f", hostkey])
    with open(client_key_path(topo) + ".pub") as fh:
        _write_atomic(f"{sd}/authorized_keys", fh.read(), 0o600)
    config = f"{sd}/sshd_config"
    _write_atomic(config, sshd_config_text(topo, server, address), 0o600)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)     # sshd's privilege separation directory
    run([SSHD, "-t", "-f", config])
    ns = server_ns(topo, server)
    run(nsenter_argv(ns, [SSHD, "-f", config, "-E", f"{sd}/sshd.log"]))
    pid = read_pidfile(f"{sd}/sshd.pid")
    state.add_process(proc_record(f"{server}/sshd", pid, f"{sd}/sshd.pid"))
    if not wait_tcp(ns, address, SSH_PORT, timeout=10):
        raise LabError(f"sshd of {server} does not accept connections on {address}:{SSH_PORT} "
                       f"(see {sd}/sshd.log)")


def host_key_line(topo: Topology, server: str, address: str) -> str:
    with open(f"{server_ssh_dir(topo, server)}/ssh_host_ed25519_key.pub") as fh:
        keytype, key = fh.read().split()[:2]
    host = address if SSH_PORT == 22 else f"[{address}]:{SSH_PORT}"
    return f"{host} {keytype} {key}"


def build_servers(topo_path: str, *, mgmt_subnet: str = DEFAULT_MGMT_SUBNET,
                  progress: Progress = _quiet) -> ServersInfo:
    """Create the lab's networks and every emulated server (OvS + sshd), without provisioning.

    On any failure everything made so far is removed before the error propagates. Call with the
    lab lock held (lab_lock) when other lab operations may run concurrently.
    """
    check_host()
    topo = _load(topo_path)
    check_addressing(topo, mgmt_subnet)
    addresses = mgmt_addresses(topo, mgmt_subnet)
    prefixlen = mgmt_network(mgmt_subnet).prefixlen
    sdir = state_dir(topo)
    if os.path.exists(lab_json_path(topo)):
        raise LabError(f"a lab named {topo.name} already has state in {sdir}")
    if os.path.exists(sdir):
        raise LabError(f"{sdir} exists but holds no lab state; remove it if it is stale")
    clashes = [ns for ns in planned_namespaces(topo) if netns_exists(ns)]
    if clashes:
        raise LabError(f"network namespace {clashes[0]} already exists and is not part of a lab of "
                       f"{topo.name}; rename the topology or remove that namespace")
    os.makedirs(sdir, mode=0o755)
    state = LabState(lab_json_path(topo), {
        "version": STATE_VERSION, "name": topo.name, "tag": topo.tag,
        "topology": os.path.abspath(topo_path), "topology_sha256": topology_digest(topo_path),
        "effective_topology": effective_topology_path(topo), "mgmt_subnet": str(mgmt_network(mgmt_subnet)),
        "phase": "building", "created": time.time(),
        "namespaces": [], "processes": [],
        "mgmt": {"ns": mgmt_ns(topo), "bridge": mgmt_bridge(topo), "ip": addresses["mgmt"]},
        "underlay": {"ns": underlay_ns(topo), "bridge": underlay_bridge(topo), "mtu": underlay_mtu(topo)},
        "servers": {},
        "ssh": {"key": client_key_path(topo), "known_hosts": known_hosts_path(topo), "port": SSH_PORT},
    })
    state.save()
    try:
        # the two shared networks
        for ns in (mgmt_ns(topo), underlay_ns(topo)):
            create_netns(ns)
            state.add_namespace(ns)
        ip_batch(mgmt_ns(topo), [f"link add {mgmt_bridge(topo)} type bridge",
                                 f"addr add {addresses['mgmt']}/{prefixlen} dev {mgmt_bridge(topo)}",
                                 f"link set {mgmt_bridge(topo)} up"])
        ip_batch(underlay_ns(topo), [f"link add {underlay_bridge(topo)} mtu {UNDERLAY_MTU} type bridge",
                                     f"link set {underlay_bridge(topo)} up"])
        make_client_key(topo)
        progress(f"networks: mgmt {mgmt_network(mgmt_subnet)} in {mgmt_ns(topo)}, underlay in {underlay_ns(topo)}")
        known_hosts = []
        for name, server in topo.servers.items():
            ns = server_ns(topo, name)
            create_netns(ns)
            state.add_namespace(ns)
            state.servers[name] = {"ns": ns, "index": server.index, "dir": server_dir(topo, name),
                                   "state_dir": provision_state_dir(topo, name),
                                   "mgmt_ip": addresses[name], "underlay_ip": server.underlay_ip,
                                   "ssh": f"root@{addresses[name]}:{SSH_PORT}"}
            state.save()
            os.makedirs(provision_state_dir(topo, name), mode=0o755, exist_ok=True)
            os.chmod(server_dir(topo, name), 0o755)
            start_ovs(topo, name, state)
            build_underlay(topo, name, state)
            build_mgmt(topo, name, state, addresses[name], prefixlen)
            start_sshd(topo, name, state, addresses[name])
            known_hosts.append(host_key_line(topo, name, addresses[name]))
            progress(f"server {name}: namespace {ns}, OvS, underlay {server.underlay_ip}, "
                     f"ssh root@{addresses[name]}")
        _write_atomic(known_hosts_path(topo), "\n".join(known_hosts) + "\n")
        eff = write_effective_topology(topo_path, topo, addresses)
        state.data["phase"] = "servers"
        state.save()
        return ServersInfo(state=state, addresses=addresses, effective_topology=eff)
    except BaseException as exc:
        progress(f"failed ({exc}); removing what was made")
        teardown(topo, state)
        raise


def _load(topo_path: str) -> Topology:
    try:
        return load_topology(topo_path)
    except TopologyError as exc:
        raise LabError(exc.problems[0] + (f" (and {len(exc.problems) - 1} more problems)"
                                          if len(exc.problems) > 1 else ""))


# ---- tearing down ---------------------------------------------------------------------------

def stray_processes(state: LabState) -> List[int]:
    """Processes still inside the lab's namespaces (e.g. SSH sessions, daemons started over SSH)."""
    me = os.getpid()
    pids: List[int] = []
    for ns in state.namespaces:
        pids.extend(p for p in netns_pids(ns) if p != me)
    return sorted(set(pids))


def teardown(topo: Topology, state: Optional[LabState] = None, progress: Progress = _quiet) -> List[str]:
    """Remove exactly what lab.json records: processes (newest first), namespaces, then files.

    Returns the problems met (best effort: a problem does not stop the rest of the teardown).
    """
    problems: List[str] = []
    if state is None:
        state = LabState.load(topo)
        if state is None:
            return problems
    for record in reversed(list(state.processes)):
        try:
            stop_process(record)
        except OSError as exc:
            problems.append(f"stopping {record['name']} (pid {record['pid']}): {exc}")
        if proc_alive(record):
            problems.append(f"{record['name']} (pid {record['pid']}) did not stop")
        else:
            state.drop_process(str(record["name"]))
    strays = stray_processes(state)
    if strays:
        progress(f"stopping {len(strays)} leftover process(es) in the lab's namespaces: "
                 f"{' '.join(map(str, strays))}")
        records = [proc_record("stray", pid) for pid in strays]
        for r in records:
            with contextlib.suppress(OSError):
                os.kill(int(r["pid"]), signal.SIGTERM)
        for r in records:
            stop_process(r, timeout=3.0)
    for ns in reversed(list(state.namespaces)):
        delete_netns(ns)
        if netns_exists(ns):
            problems.append(f"network namespace {ns} could not be deleted")
        else:
            state.namespaces.remove(ns)
            state.save()
    if not problems:
        sdir = os.path.dirname(state.path)
        shutil.rmtree(sdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(lab_root())            # only if no other lab is left
    return problems
