"""End to end, a hostile student (issue 21): a real demo lab per isolation mode, on this host, which
forwards (net.ipv4.ip_forward=1 here, and new namespaces inherit it).

  * frames injected across ASes (item 1): from 6.OSLO (AS 6, `configure: false`, on VM3), hand-built
    GRE frames (raw AF_PACKET, run inside the router's namespace) sent to the MAC of VM3's side of
    its remote link, outer source spoofed to another server's underlay address, tunnel key (key
    mode) or DSCP (tos mode) of every other remote link: nothing arrives on those links' router
    interfaces (tcpdump there, checked to see a real ping meanwhile), no neighbour entry changes;
  * students' BGP (item 7, key lab): 6.OSLO announces a more-specific of AS 1's prefix, a default
    route, the /32 of a link address and 300 prefixes of nobody's; every configured router refuses
    them, AS 6's own prefix still reaches everyone, every configured session stays up;
  * an interface flap keeps its IPv6 address (item 8, key lab): `ip link set down/up` and vtysh
    `shutdown`/`no shutdown` on 1.ZURI's link 1: the global IPv6 address stays, the IPv6 session
    comes back;
  * faults `lab up` repairs in place (item 6, key lab, run last on it): `kill -9` of a router's zebra
    and bgpd is a `lab status` problem and `lab up` restarts the router's daemons as a set (ospfd's
    routes in the new zebra, BGP back); `ovs-vsctl del-br` of a remote bridge is a problem and `lab
    up` recreates it with its flows; a link failed by the operator stays failed through both and
    through `lab down` + `lab up`.
Root; each lab is removed whatever happens.
"""
from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

import pytest

from e2e_support import capture, captured, demo_variant, isolation, require_lab, stop_capture
from minet_sdn import host
from minet_sdn.lab import convergence, observe, paths, places
from minet_sdn.lab.lab import Lab as MinetLab
from minet_sdn.topology import load_topology, names
from minet_sdn.topology.addressing import topology_addressing
from minet_sdn.topology.model import router_ifname
from tests.polling import wait_until

pytestmark = pytest.mark.root

require_lab("vtysh", "ping", "tcpdump")

STUDENT, STUDENT_LINK = "6.OSLO", 9          # AS 6 (configure: false) on VM3; link 9 to 4.LYON on VM2
PORT = 31337
FAKE_MAC = "02:66:66:66:66:66"


class Lab:
    def __init__(self, path: str, mode: str):
        self.path, self.mode = path, mode
        self.topo = load_topology(path)

    def ns(self, node: str) -> str:
        return places.resolve_node(self.topo, node)[0]

    def run(self, node: str, *argv: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(node), *argv], capture_output=True, text=True,
                              timeout=timeout, check=check)

    def vtysh(self, router: str, *commands: str) -> str:
        place = places.router_place(self.topo, router)
        return subprocess.run(place.exec_prefix() + place.vtysh_argv(*commands), capture_output=True, text=True,
                              timeout=30).stdout

    def mac(self, ns: str, ifname: str) -> str:
        out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", ifname], capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out)[0]["address"]

    def neighbours(self, node: str, ifname: str) -> dict:
        out = self.run(node, "ip", "-j", "neigh", "show", "dev", ifname).stdout
        return {n["dst"]: n.get("lladdr") for n in json.loads(out or "[]")}


@pytest.fixture(scope="module", params=["key", "tos"])
def lab(request, tmp_path_factory):
    path = demo_variant(tmp_path_factory.mktemp(f"hostile-{request.param}"), "hs", "demo.yaml",
                        isolation(request.param))
    try:
        MinetLab(path, progress=lambda m: print(m, flush=True)).up()
        yield Lab(path, request.param)
    finally:
        MinetLab(path, progress=lambda m: None).remove()


# ---- frames, built by hand ------------------------------------------------------------------------

def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def _ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(src: str, dst: str, proto: int, payload: bytes, tos: int = 0) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), 0x6d6e, 0, 64, proto, 0, _ip4(src), _ip4(dst))
    return head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + payload


def inner_frames(far, near) -> list:
    """What the far end of a link could send its near end: a UDP datagram, and an ARP reply that
    would re-point the near end's neighbour entry for the far address at FAKE_MAC."""
    udp = struct.pack("!HHHH", PORT, PORT, 8 + 14, 0) + b"MINET-HOSTILE!"
    datagram = _mac(near.mac) + _mac(far.mac) + b"\x08\x00" + _ipv4(far.ip, near.ip, 17, udp)
    arp = (_mac(near.mac) + _mac(FAKE_MAC) + b"\x08\x06" +
           struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, _mac(FAKE_MAC), _ip4(far.ip), _mac(near.mac), _ip4(near.ip)))
    return [datagram, arp]


def gre_frame(src_mac: str, dst_mac: str, outer_src: str, outer_dst: str, inner: bytes,
              key: int = None, dscp: int = 0) -> bytes:
    gre = (struct.pack("!HHI", 0x2000, 0x6558, key) if key is not None else struct.pack("!HH", 0, 0x6558)) + inner
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + _ipv4(outer_src, outer_dst, 47, gre, tos=dscp << 2)


SENDER = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frames = [bytes.fromhex(h) for h in sys.stdin.read().split()]
for _ in range(5):
    for f in frames:
        s.send(f)
print(len(frames) * 5)
"""


# ---- item 1 --------------------------------------------------------------------------------------------

def test_a_students_router_cannot_inject_frames_into_other_ases_links(lab):
    topo = lab.topo
    student_if = router_ifname(STUDENT_LINK)
    server_ns = names.server_ns(topo, topo.ases[6].server)
    port_mac = lab.mac(server_ns, topo.link_port_name(STUDENT_LINK))      # the server's side of 6.OSLO's link
    my_mac = lab.mac(lab.ns(STUDENT), student_if)
    targets = [l for l in topo.links if l.remote and 6 not in (l.a.asn, l.b.asn)]
    assert len(targets) >= 4
    frames, watched = [], []
    for link in targets:
        for near, far in ((link.a, link.b), (link.b, link.a)):
            near_srv, far_srv = topo.routers[near.router].server, topo.routers[far.router].server
            for inner in inner_frames(far, near):
                frames.append(gre_frame(my_mac, port_mac, topo.servers[far_srv].underlay_ip,
                                        topo.servers[near_srv].underlay_ip, inner,
                                        key=link.id if lab.mode == "key" else None,
                                        dscp=topo.link_marks[link.id] if lab.mode == "tos" else 0))
            watched.append((link, near, far))
    before = {(l.id, n.router): lab.neighbours(n.router, router_ifname(l.id)) for l, n, _ in watched}
    caps = {(l.id, n.router): capture(lab.ns(n.router), router_ifname(l.id), f"udp port {PORT} or arp or icmp")
            for l, n, _ in watched}
    texts = {}
    try:
        sent = subprocess.run(["ip", "netns", "exec", lab.ns(STUDENT), sys.executable, "-c", SENDER, student_if],
                              input=" ".join(f.hex() for f in frames), capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0 and int(sent.stdout) == 5 * len(frames), sent.stderr
        # the captures work: a real ping over the first target link shows up on its near end
        link, near, far = watched[0]
        assert lab.run(far.router, "ping", "-c", "2", "-i", "0.2", "-W", "1", near.ip).returncode == 0
        wait_until(lambda: "ICMP echo request" in captured(caps[(link.id, near.router)]), 5, interval=0.2,
                   what="the check ping in the capture")
        time.sleep(1.0)            # deliberately: a window for injected frames still in flight to land
    finally:
        for key, handle in caps.items():
            texts[key] = stop_capture(handle)
    leaked = {k: [l for l in t.splitlines() if str(PORT) in l or FAKE_MAC in l.lower()] for k, t in texts.items()}
    assert not any(leaked.values()), {k: v[:3] for k, v in leaked.items() if v}
    after = {(l.id, n.router): lab.neighbours(n.router, router_ifname(l.id)) for l, n, _ in watched}
    for key, neigh in after.items():
        assert FAKE_MAC not in neigh.values(), (key, neigh)
        changed = {ip: mac for ip, mac in neigh.items() if ip in before[key] and before[key][ip] != mac}
        assert not changed, (key, before[key], neigh)


def test_the_servers_kernel_neither_forwards_nor_answers_on_router_ports(lab):
    topo = lab.topo
    for server in topo.servers:
        ns = names.server_ns(topo, server)
        sysctl = lambda key: subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", key],   # noqa: E731
                                            capture_output=True, text=True).stdout.strip()
        assert sysctl("net.ipv4.ip_forward") == "0" and sysctl("net.ipv6.conf.all.forwarding") == "0", server
        for link in topo.links:
            if link.remote and server in link.servers():
                port = topo.link_port_name(link.id)
                assert sysctl(f"net.ipv4.conf.{port}.forwarding") == "0"
                assert sysctl(f"net.ipv4.conf.{port}.arp_ignore") == "8"
                assert sysctl(f"net.ipv6.conf.{port}.disable_ipv6") == "1"


# ---- item 7 --------------------------------------------------------------------------------------------

def test_a_students_bad_announcements_are_refused_everywhere(lab):
    if lab.mode != "key":
        pytest.skip("BGP does not depend on the isolation mode: checked on the key lab")
    topo = lab.topo
    link_ip = topo.link(1).a.ip
    junk = [f"172.{16 + i // 256}.{i % 256}.0/24" for i in range(300)]
    bad = ["10.1.0.0/17", "10.1.128.0/17", "0.0.0.0/0", f"{link_ip}/32"]
    commands = ["configure terminal", "router bgp 6", "no bgp ebgp-requires-policy", "no bgp network import-check"]
    for link in topo.links:
        for me, far in ((link.a, link.b), (link.b, link.a)):
            if me.router == STUDENT:
                commands.append(f"neighbor {far.ip} remote-as {far.asn}")
    commands.append("address-family ipv4 unicast")
    commands += [f"network {p}" for p in ["10.6.0.0/16"] + bad + junk]
    lab.vtysh(STUDENT, *commands)
    configured = convergence.configured_routers(topo)

    def learned(router: str, prefix: str) -> bool:
        out = lab.vtysh(router, f"show bgp ipv4 unicast {prefix} json")
        try:
            return bool(json.loads(out or "{}").get("paths"))
        except ValueError:
            return False
    # normal routes still flow: AS 6's own prefix reaches every configured router
    assert wait_until(lambda: all(learned(r, "10.6.0.0/16") for r in configured), 120, interval=2), \
        [r for r in configured if not learned(r, "10.6.0.0/16")]
    time.sleep(3)          # deliberately: the bad routes, sent in the same updates, had their chance
    for router in configured:
        for prefix in bad + junk[:3] + junk[-3:]:
            assert not learned(router, prefix), (router, prefix)
        summary = json.loads(lab.vtysh(router, "show bgp ipv4 unicast summary json") or "{}")
        assert summary.get("totalPeers", 0) > 0
        total = sum(p.get("pfxRcd", 0) for p in summary.get("peers", {}).values())
        assert total < 100, (router, total)          # before: 300 junk prefixes from every session
    ok, reports = convergence.wait_bgp(topo, timeout=60)
    assert ok, [r["router"] for r in reports if not convergence.bgp_converged(r)]


# ---- item 8 --------------------------------------------------------------------------------------------

def test_an_interface_flap_keeps_its_ipv6_address_and_session(lab):
    if lab.mode != "key":
        pytest.skip("addresses do not depend on the isolation mode: checked on the key lab")
    topo = lab.topo
    link = topo.link(1)
    router, ifname, far6 = link.a.router, router_ifname(1), link.b.ip6

    def global6() -> list:
        out = lab.run(router, "ip", "-j", "-6", "addr", "show", "dev", ifname).stdout
        return [a.get("local") for i in json.loads(out or "[]") for a in i.get("addr_info", [])
                if a.get("scope") == "global"]

    def session() -> str:
        peers = json.loads(lab.vtysh(router, "show bgp ipv6 unicast summary json") or "{}").get("peers", {})
        return peers.get(far6, {}).get("state", "?")
    assert link.a.ip6 in global6(), (global6(), lab.run(router, "ip", "-6", "addr", "show", "dev", ifname).stdout)
    assert wait_until(lambda: session() == "Established", 60, interval=1)
    for down, up in ((["ip", "link", "set", ifname, "down"], ["ip", "link", "set", ifname, "up"]),
                     (("vtysh", "shutdown"), ("vtysh", "no shutdown"))):
        if down[0] == "vtysh":
            lab.vtysh(router, "configure terminal", f"interface {ifname}", down[1])
            wait_until(lambda: session() != "Established", 15, interval=0.5)
            assert link.a.ip6 in global6()                    # before: gone while down, and after
            lab.vtysh(router, "configure terminal", f"interface {ifname}", up[1])
        else:
            lab.run(router, *down, check=True)
            assert link.a.ip6 in global6()
            lab.run(router, *up, check=True)
        assert wait_until(lambda: link.a.ip6 in global6(), 10, interval=0.2), global6()
        assert wait_until(lambda: session() == "Established", 60, interval=1), session()


# ---- item 6: faults `lab status` reports and `lab up` repairs in place (key lab; run last on it) ---------

def _daemon_pid(lab, router: str, daemon: str):
    path = f"{places.router_place(lab.topo, router).frr_dir}/{daemon}.pid"
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _ovs(lab, server: str, *argv: str) -> subprocess.CompletedProcess:
    d = paths.server_dir(lab.topo, server)
    return subprocess.run([*names.exec_prefix("netns", names.server_ns(lab.topo, server)), "env",
                           *(f"{k}={v}" for k, v in host.ovs_env(d).items()), *argv],
                          capture_output=True, text=True, timeout=30)


def _link_state(path: str, link_id: int) -> str:
    code, body = MinetLab(path, progress=lambda m: None).rest_call("GET", "/v1/links")
    assert code == 200, body
    return next(l["state"] for l in body["links"] if l["id"] == link_id)


def test_killed_zebra_and_bgpd_are_a_problem_and_up_restarts_the_router_as_a_set(lab):
    if lab.mode != "key":
        pytest.skip("FRR does not depend on the isolation mode: checked on the key lab")
    router, other = "1.ZURI", "GENE"              # OSPF between them, iBGP over their loopbacks
    before = {d: _daemon_pid(lab, router, d) for d in ("zebra", "bgpd", "ospfd")}
    assert all(before.values()), before
    for daemon in ("bgpd", "zebra"):
        os.kill(before[daemon], signal.SIGKILL)
    assert wait_until(lambda: not host.pid_alive(before["zebra"]) and not host.pid_alive(before["bgpd"]), 10)
    problems = MinetLab(lab.path, progress=lambda m: None).status(json=True)["problems"]
    assert f"router {router}: FRR zebra, bgpd not running" in problems, problems      # before: no problem
    MinetLab(lab.path, progress=lambda m: print(m, flush=True)).up()    # returns once BGP is back
    after = {d: _daemon_pid(lab, router, d) for d in before}
    assert all(after[d] and after[d] != before[d] and host.pid_alive(after[d]) for d in after), (before, after)
    # the new zebra has ospfd's routes (before: the old ospfd never gave them to it, iBGP stayed down)
    loopback = topology_addressing(lab.topo)[1].routers[other].loopback
    ospf = json.loads(lab.vtysh(router, "show ip route ospf json") or "{}")
    assert any(r.get("selected") for r in ospf.get(f"{loopback}/32", [])), sorted(ospf)
    ok, reports = convergence.wait_bgp(lab.topo, timeout=0)
    assert ok, [r["router"] for r in reports if not convergence.bgp_converged(r)]
    assert MinetLab(lab.path, progress=lambda m: None).status(json=True)["problems"] == []
    # and the CLI reaches the controller through the relay (each user from its own loopback address)
    res = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "link", "list", lab.path],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_a_deleted_remote_bridge_is_recreated_and_an_operator_failure_survives_it_and_down_up(lab):
    if lab.mode != "key":
        pytest.skip("bridges do not depend on the isolation mode: checked on the key lab")
    topo, failed = lab.topo, 3                   # 1.GENE - 2.LOND, on VM1's bridge towards VM2
    bridge = next(b for b in topo.bridges.values() if b.server == "VM1" and b.peer == "VM2")
    assert failed in bridge.link_ids
    gene = places.resolve_node(topo, topo.link(failed).a.router)[0]
    say = lambda m: print(m, flush=True)     # noqa: E731
    code, body = MinetLab(lab.path, progress=say).rest_call("POST", f"/v1/links/{failed}/fail")
    assert code == 200, body
    try:
        assert _ovs(lab, "VM1", "ovs-vsctl", "del-br", bridge.name).returncode == 0
        problems = MinetLab(lab.path, progress=lambda m: None).status(json=True)["problems"]
        assert f"remote bridge {bridge.name} of VM1 is gone" in problems, problems     # before: not reported
        MinetLab(lab.path, progress=say).up()     # recreated; returns once the other links' BGP is back
        assert bridge.name in _ovs(lab, "VM1", "ovs-vsctl", "list-br").stdout.split()
        code, body = MinetLab(lab.path, progress=say).rest_call("GET", "/v1/switches")
        sw = next(s for s in body["switches"] if s["name"] == bridge.name and s["server"] == "VM1")
        assert sw["connected"] and sw["flows"] > 0, sw

        def table_matches() -> bool:               # the flows are in the datapath, not only in the view
            sw = next(s for s in MinetLab(lab.path, progress=lambda m: None).rest_call("GET", "/v1/switches")[1]
                      ["switches"] if s["name"] == bridge.name and s["server"] == "VM1")
            out = _ovs(lab, "VM1", "ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate",
                       f"unix:{paths.server_dir(topo, 'VM1')}/{bridge.name}.mgmt").stdout
            got = re.search(r"flow_count=(\d+)", out)
            return bool(got) and sw["synced"] and int(got.group(1)) == sw["flows"]
        assert wait_until(table_matches, 30, interval=0.5)
        # the operator's failure holds on the new bridge, then across lab down + up
        assert _link_state(lab.path, failed) == "failed"
        assert wait_until(lambda: not observe.carrier(gene, router_ifname(failed)), 10, interval=0.2)
        assert MinetLab(lab.path, progress=say).down() == []
        MinetLab(lab.path, progress=say).up()       # converges without the failed link's sessions
        assert _link_state(lab.path, failed) == "failed"               # before: up again after down + up
        assert wait_until(lambda: not observe.carrier(gene, router_ifname(failed)), 10, interval=0.2)
        assert MinetLab(lab.path, progress=lambda m: None).status(json=True)["problems"] == []
    finally:
        if MinetLab(lab.path, progress=lambda m: None).state is not None:
            MinetLab(lab.path, progress=say).rest_call("POST", f"/v1/links/{failed}/restore")
