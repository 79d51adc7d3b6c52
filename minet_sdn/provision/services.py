"""Provisioning of the mini-Internet's services: DNS servers (nsd) and every node's resolver.

`build(topo, server, plan)` is pure: the `ServicesPlan` of one server (the DNS servers it runs with
their configuration and zone files, the resolv.conf of each of its nodes). `up(prov)` makes the
machine match it and is idempotent; `down(prov)` removes what `up` made. Both are called by
apply.Provisioner (two one-line hooks).

Where things go (all ours, all removed by `down`):
    zone files, nsd.conf, pid file   <state_dir>/services/dns/<node>/ (inside the state dir)
    nsd                               runs in the DNS host node's network namespace (nsenter --net),
                                      as user nsd when it exists, listening on the host's addresses
    resolv.conf                       netns: /etc/netns/<ns>/resolv.conf (`ip netns exec` binds it
                                      over /etc/resolv.conf); docker: the container's /etc/resolv.conf.
                                      Its first line is our mark; a file without it is never touched.
"""
from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..topology import names, services as S
from ..topology.model import Topology
from ..topology.places import parse_node_id
from .written import read_text, write_if_changed

NETNS_ETC = "/etc/netns"
NSD = "nsd"


@dataclass(frozen=True)
class DnsServer:
    node: str                              # the host node running it ("21.HUB.host")
    listen: Tuple[str, ...]                # its addresses
    files: Tuple[Tuple[str, str], ...]     # (file name, text): nsd.conf and the zone files


@dataclass(frozen=True)
class Resolver:
    node: str
    text: str                              # resolv.conf


@dataclass(frozen=True)
class ServicesPlan:
    dns: Tuple[DnsServer, ...] = ()
    resolvers: Tuple[Resolver, ...] = ()


def mark(instance: str) -> str:
    return f"minet-sdn {instance}: written by minet-provision, removed by its down"


def address_book(topo: Topology, plans) -> List[S.Record]:
    """(node id, address) of every interface of every node, from the plans of all servers."""
    out: List[S.Record] = []
    for plan in plans:
        for node in plan.nodes:
            out += [(node.id, a.split("/")[0]) for a in node.lo_addresses]
        for veth in plan.veths:
            for end in (veth.a, veth.b):
                if end.node is not None:
                    out += [(end.node, a.split("/")[0]) for a in end.addresses]
        for lan in plan.ixps:           # a route server's address is on its LAN bridge, not a veth
            out += [(lan.node, ip) for ip in (lan.ip, lan.ip6) if ip]
    return out


def topology_address_book(topo: Topology) -> List[S.Record]:
    """The same records as `address_book` over every server's plan, straight from the topology's
    addressing: what each server's plan puts on its interfaces, without building the other servers'
    plans (each server used to build every server's plan: S^2 plans for S servers, most of the cost
    of provisioning with DNS). tests/unit/test_services.py checks the two agree."""
    from ..topology.addressing import topology_addressing, topology_addressing6
    from ..topology.places import node_id
    from .layer2 import addressing_of
    addressing = topology_addressing(topo)
    addressing6 = topology_addressing6(topo, addressing) if topo.fabric.ipv6 else {}
    out: List[S.Record] = []
    for as_ in topo.ases.values():
        addr, addr6 = addressing[as_.asn], addressing6.get(as_.asn)
        for name in as_.routers:
            rid, hid = node_id(as_.asn, name), node_id(as_.asn, name, host=True)
            ra = addr.routers[name]
            out += [(rid, ra.loopback), (rid, ra.host_router_ip), (hid, ra.host_ip)]
            if addr6 is not None:
                ra6 = addr6.routers[name]
                out += [(rid, ra6.loopback), (rid, ra6.host_router_ip), (hid, ra6.host_ip)]
        for link in addr.links:
            out += [(node_id(as_.asn, link.a), link.a_ip), (node_id(as_.asn, link.b), link.b_ip)]
            if addr6 is not None:
                a6, b6 = addr6.links[link.index]
                out += [(node_id(as_.asn, link.a), a6), (node_id(as_.asn, link.b), b6)]
        if as_.layer2 is not None and as_.configure:      # students' ASes: wired, not addressed
            la = addressing_of(topo, as_, addr6.prefix if addr6 is not None else None)
            for router, by_vlan in la.routers.items():
                out += [(node_id(as_.asn, router), a.split("/")[0]) for ips in by_vlan.values() for a in ips]
            for host in as_.layer2.hosts:
                if not host.vpn:
                    out += [(f"{as_.asn}.{host.name}", a.split("/")[0]) for a in la.hosts[host.name].addresses]
    for link in topo.links:
        for end in (link.a, link.b):
            out += [(end.router, ip) for ip in (end.ip, end.ip6) if ip]     # (as _link_iface: IPv6 too)
    for x in topo.ixps.values():
        out += [(m.router, ip) for m in x.members for ip in (m.ip, m.ip6) if ip]
        out += [(x.node_id, ip) for ip in (x.route_server_ip, x.route_server_ip6) if ip]
    return out


def host_addresses(records: List[S.Record], node: str) -> Tuple[str, ...]:
    ips = sorted({ip for n, ip in records if n == node}, key=lambda ip: (":" in ip, ip))
    return tuple(ips)


def addresses_by_node(records: List[S.Record]) -> Dict[str, Tuple[str, ...]]:
    """host_addresses of every node at once (one pass, not one per node)."""
    found: Dict[str, set] = {}
    for n, ip in records:
        found.setdefault(n, set()).add(ip)
    return {n: tuple(sorted(ips, key=lambda ip: (":" in ip, ip))) for n, ips in found.items()}


def nsd_conf(workdir: str, listen: Tuple[str, ...], zone_names: List[str], username: str) -> str:
    lines = ["server:", f"    username: \"{username}\"", "    chroot: \"\"", f"    zonesdir: \"{workdir}\"",
             f"    pidfile: \"{workdir}/nsd.pid\"", f"    logfile: \"{workdir}/nsd.log\"",
             f"    xfrdfile: \"{workdir}/xfrd.state\"", f"    zonelistfile: \"{workdir}/zone.list\"",
             "    database: \"\"", "    server-count: 1", "    hide-version: yes", "    refuse-any: yes",
             "    verbosity: 1", "    port: 53"]
    lines += [f"    ip-address: {ip}" for ip in listen]
    lines += ["remote-control:", "    control-enable: no"]
    for zone in zone_names:
        lines += ["zone:", f"    name: \"{zone}\"", f"    zonefile: \"{zone}.zone\""]
    return "\n".join(lines) + "\n"


def dns_dir(state_dir: str, node: str) -> str:
    return os.path.join(state_dir, "services", "dns", node)


def build(topo: Topology, server: str, plan, plan_of: Optional[Callable[[str], object]] = None,
          username: Optional[str] = None) -> ServicesPlan:
    """The services of `server` (pure), whose plan (without services) is `plan`. The names cover
    the whole mini-Internet: from the topology (topology_address_book), or, when `plan_of(server)`
    is given, from every server's plan without services (the slow way, kept to check the other)."""
    hosts = S.dns_hosts(topo)
    if not hosts:
        return ServicesPlan()
    if plan_of is None:
        records = topology_address_book(topo)
    else:
        records = address_book(topo, [plan if s == server else plan_of(s) for s in topo.servers])
    by_node = addresses_by_node(records)
    ns_of = {asn: by_node.get(S.resolver_for(topo, asn, hosts), ()) for asn in topo.ases}
    zones = S.zones(topo, records, ns_of)
    user = username if username is not None else _nsd_user()
    dns = []
    for host in hosts:
        if topo.ases[parse_node_id(host).asn].server != server:
            continue
        workdir = dns_dir(plan.state_dir, host)
        listen = by_node.get(host, ())
        files = [("nsd.conf", nsd_conf(workdir, listen, sorted(zones), user))]
        files += [(f"{z}.zone", zones[z]) for z in sorted(zones)]
        dns.append(DnsServer(node=host, listen=listen, files=tuple(files)))
    resolvers = []
    for node in plan.nodes:
        if node.id.startswith("ixp"):
            continue                       # a route server resolves nothing
        servers = ns_of.get(node.asn)
        if servers:
            resolvers.append(Resolver(node.id, S.resolv_conf(servers, node.asn, mark(topo.name))))
    return ServicesPlan(dns=tuple(dns), resolvers=tuple(resolvers))


def _nsd_user() -> str:
    try:
        pwd.getpwnam("nsd")
        return "nsd"
    except KeyError:
        return ""


# ---- apply (impure) -----------------------------------------------------------------------------

def _pid(workdir: str) -> Optional[int]:
    try:
        with open(os.path.join(workdir, "nsd.pid")) as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/comm") as fh:
            if not fh.read().startswith("nsd"):
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if os.path.join(workdir, "nsd.conf").encode() not in fh.read():
                return None        # an nsd, but not the one of this directory
    except OSError:
        return None
    return pid


def _stop(workdir: str, timeout: float = 5.0) -> bool:
    pid = _pid(workdir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid(workdir) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid(workdir) == pid:
        os.kill(pid, signal.SIGKILL)
    return True


def _write(path: str, text: str) -> bool:
    # nsd reads the zones as user nsd; their content is public anyway
    return write_if_changed(path, text, mode=0o644)


def _ours(text: Optional[str], instance: str) -> bool:
    return text is not None and text.startswith(f"# {mark(instance)}")


_read = read_text


def up(prov) -> None:
    """Start/refresh the plan's DNS servers and write its nodes' resolv.conf (idempotent)."""
    sp: Optional[ServicesPlan] = prov.plan.services
    if not sp or (not sp.dns and not sp.resolvers):
        return
    for dns in sp.dns:
        workdir = dns_dir(prov.plan.state_dir, dns.node)
        os.makedirs(workdir, exist_ok=True)
        for d in (workdir, os.path.dirname(workdir), os.path.dirname(os.path.dirname(workdir))):
            os.chmod(d, 0o755)
        changed = [name for name, text in dns.files if _write(os.path.join(workdir, name), text)]
        running = _pid(workdir) is not None
        if running and not changed:
            continue
        if running:
            _stop(workdir)
        node = prov.plan.node_by_id[dns.node]
        argv = ["nsenter", f"--net={prov.backend.nspath(node)}", NSD, "-c", os.path.join(workdir, "nsd.conf")]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        deadline = time.monotonic() + 10
        while proc.returncode == 0 and _pid(workdir) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.returncode != 0 or _pid(workdir) is None:
            log = (_read(os.path.join(workdir, "nsd.log")) or "").strip().splitlines()
            why = (proc.stderr.strip().splitlines() or log or [f"nsd exited {proc.returncode}"])[-1]
            raise RuntimeError(f"DNS server in {dns.node} did not start: {why}")
        prov.changes.append(f"started DNS server (nsd) in {dns.node}")
    for res in sp.resolvers:
        node = prov.plan.node_by_id[res.node]
        if prov.plan.backend == "docker":
            cur = subprocess.run(prov.backend.exec_args(node, ["cat", "/etc/resolv.conf"]),
                                 capture_output=True, text=True, timeout=30).stdout
            if cur != res.text:
                argv = names.exec_prefix("docker", node.ns, interactive=True) + ["sh", "-c", "cat > /etc/resolv.conf"]
                subprocess.run(argv, input=res.text, capture_output=True, text=True, timeout=30, check=True)
                prov.changes.append(f"resolv.conf of {res.node}")
            continue
        d = os.path.join(NETNS_ETC, node.ns)
        path = os.path.join(d, "resolv.conf")
        cur = _read(path)
        if cur is not None and not _ours(cur, prov.plan.instance):
            raise RuntimeError(f"{path} exists and is not ours (no minet-sdn mark): remove it")
        os.makedirs(d, exist_ok=True)
        if _write(path, res.text):
            prov.changes.append(f"resolv.conf of {res.node}")


def down(prov) -> None:
    """Stop our DNS servers and remove our resolv.conf files (only files with our mark)."""
    root = os.path.join(prov.plan.state_dir, "services", "dns")
    if os.path.isdir(root):
        for entry in sorted(os.listdir(root)):
            if _stop(os.path.join(root, entry)):
                prov.changes.append(f"stopped DNS server (nsd) in {entry}")
    if prov.plan.backend == "docker":
        return                      # the containers' files go with the containers
    for node in prov.plan.nodes:
        d = os.path.join(NETNS_ETC, node.ns)
        path = os.path.join(d, "resolv.conf")
        if _ours(_read(path), prov.plan.instance):
            os.unlink(path)
            prov.changes.append(f"removed {path}")
            try:
                os.rmdir(d)
            except OSError:
                pass
