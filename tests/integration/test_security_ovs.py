"""A router cannot reach the controller, nor reach or poison another link, on real Open vSwitch.

Uses the two-server rig of ovs_rig.py (links 1: 1.A-2.C and 2: 1.B-2.C), both modes:
  * from every router namespace, the controller's OpenFlow and REST listeners do not answer, not
    even with a route towards them through the router's own link;
  * a frame sent by 1.A on link 1 towards link 2's far address, with link 2's DSCP mark (tos) or
    anything else, never shows up on link 2's ports; it can only ever leave at link 1's far end;
  * a forged ARP reply from 1.A claiming link 2's near address never crosses the tunnel, and
    2.C's neighbour entry for that address keeps 1.B's MAC.
Root; cleans up even when a test fails.
"""
import os
import shutil
import subprocess
import sys

import pytest

from minet_sdn.topology import names
from ovs_rig import running_rig, sh

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("ovs-vswitchd"), reason="needs Open vSwitch")]


@pytest.fixture(scope="module", params=["key", "tos"])
def rig(request, tmp_path_factory):
    with running_rig(tmp_path_factory.mktemp(request.param), request.param) as r:
        yield r


def connects(ns, host, port):
    code = ("import socket,sys\ns=socket.socket();s.settimeout(1.5)\n"
            f"try:\n s.connect(({host!r},{port}));print('open')\nexcept OSError as e:\n print('closed',e)")
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=20).stdout.startswith("open")


def test_controller_listeners_are_unreachable_from_every_router(rig):
    c = rig.eff.controller
    mgmt = names.mgmt_ns(rig.topo)
    # the listeners are there (seen from the management namespace) ...
    assert connects(mgmt, c.ofp_host, c.ofp_port) and connects(mgmt, c.rest_host, c.rest_port)
    for router, ns in rig.routers.items():
        link = next(l for l in rig.topo.links if router in (l.a.router, l.b.router))
        end = link.a if link.a.router == router else link.b
        # ... and a router pointing a route at them through its own link still gets nothing
        sh("ip", "-n", ns, "route", "replace", f"{c.ofp_host}/32", "dev", end.ifname, check=False)
        sh("ip", "-n", ns, "route", "replace", f"{c.rest_host}/32", "dev", end.ifname, check=False)
        try:
            assert not connects(ns, c.ofp_host, c.ofp_port), f"{router} reaches the OpenFlow listener"
            assert not connects(ns, c.rest_host, c.rest_port), f"{router} reaches the REST API"
        finally:
            sh("ip", "-n", ns, "route", "del", f"{c.ofp_host}/32", check=False)
            sh("ip", "-n", ns, "route", "del", f"{c.rest_host}/32", check=False)


def test_frames_forged_for_another_link_never_reach_it(rig):
    t = rig.topo
    l1, l2 = t.link(1), t.link(2)
    a = rig.routers["1.A"]
    mark = t.link_marks[2]
    # 1.A points link 2's far address (2.C's side of link 2) at its own link, with the right MAC
    sh("ip", "-n", a, "neigh", "replace", l2.b.ip, "lladdr", l2.b.mac, "dev", "ext1", "nud", "permanent")
    sh("ip", "-n", a, "route", "replace", f"{l2.b.ip}/32", "dev", "ext1")
    try:
        other = [rig.capture(s, 2, f"ether src {l1.a.mac} or host {l1.a.ip}") for s in ("VM1", "VM2")]
        own = rig.capture("VM2", 1, f"host {l2.b.ip}")
        for tos in (0, mark << 2, (mark << 2) | 1, 0xFC):
            sh("ip", "netns", "exec", a, "ping", "-c", "3", "-i", "0.05", "-W", "1", "-Q", str(tos), l2.b.ip,
               check=False)
        # key mode or tos: the frames only ever come out at link 1's far end
        assert [stop() for stop in other] == [0, 0]
        assert own() >= 1
    finally:
        sh("ip", "-n", a, "route", "del", f"{l2.b.ip}/32", check=False)
        sh("ip", "-n", a, "neigh", "del", l2.b.ip, "dev", "ext1", check=False)


SEND_ARP = r"""
import socket, struct, sys
ifname, src_mac, claim_ip, dst_mac, target_ip = sys.argv[1:6]
mac = lambda m: bytes.fromhex(m.replace(":", ""))
ip = socket.inet_aton
frame = (mac(dst_mac) + mac(src_mac) + struct.pack("!H", 0x0806)
         + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac(src_mac) + ip(claim_ip) + mac(dst_mac) + ip(target_ip))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(5):
    s.send(frame)
"""


def arp_drops(rig):
    """Packets VM1's bridge dropped with its priority-150 'any other ARP' flow."""
    import re
    line = next(l for l in rig.flows("VM1", "VM2") if "priority=150" in l)
    return int(re.search(r"n_packets=(\d+)", line).group(1))


def test_a_forged_arp_reply_never_crosses_and_poisons_nothing(rig):
    t = rig.topo
    l1, l2 = t.link(1), t.link(2)
    a, c = rig.routers["1.A"], rig.routers["2.C"]
    # 2.C learns 1.B's real MAC for link 2's near address
    assert rig.ping("2.C", l2.a.ip, count=1) == 1
    ends = {l.b.ifname for l in (l1, l2)}
    assert len(ends) == 2
    forged = f"arp and ether src {l1.a.mac}"
    tunnel = [rig.capture(s, 2, forged) for s in ("VM1", "VM2")]
    own_far = rig.capture("VM2", 1, forged)
    dropped = arp_drops(rig)
    # 1.A claims link 2's near address (1.B's) with its own MAC, broadcast and unicast to 2.C's link-1 MAC
    for dst in ("ff:ff:ff:ff:ff:ff", l1.b.mac, l2.b.mac):
        sh("ip", "netns", "exec", a, sys.executable, "-c", SEND_ARP, "ext1", l1.a.mac, l2.a.ip, dst, l2.b.ip)
    # they did enter the bridge (its "any other ARP: drop" flow counted them) ...
    wait_until(lambda: arp_drops(rig) >= dropped + 15, 5, interval=0.1,
               what="the bridge to count the forged ARP frames")
    assert [stop() for stop in tunnel] == [0, 0]            # ... and went nowhere: not to link 2,
    assert own_far() == 0                                   # not even across its own link
    neigh = sh("ip", "-n", c, "neigh", "show", l2.a.ip)
    assert l1.a.mac not in neigh.lower()
    assert rig.ping("2.C", l2.a.ip, count=2) == 2           # link 2 still reaches 1.B
