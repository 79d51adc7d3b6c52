"""provision/ixp.py against a fake `ip`/`bridge`: the peering LAN's bridge, port flags, static FDB
and ARP from the plan; a second run with nothing changed issues no change."""
import json
import os

from minet_sdn.provision import ixp
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import parse_topology

TOPO = """
name: t
servers: [VM1]
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM1, routers: [B]}
ixps:
  100: {server: VM1, members: [1.A, 2.B]}
"""


class FakeIp:
    def __init__(self):
        self.calls = []
        self.bridge = False
        self.ports = set()

    def __call__(self, ns, args):
        self.calls.append((ns, args))
        if args[:4] == ["ip", "-j", "link", "show"]:
            if args[4] == "dev":
                return (0, "[{}]") if self.bridge else (1, "Device does not exist")
            return 0, json.dumps([{"ifname": p} for p in sorted(self.ports)])
        if args[:4] == ["ip", "link", "show", "dev"]:
            return (0, "") if self.bridge else (1, "Device does not exist")
        if args[:3] == ["ip", "link", "add"]:
            self.bridge = True
        if args[:3] == ["ip", "link", "set"] and "master" in args:
            self.ports.add(args[3])
        return 0, ""


def test_builds_the_lan_then_changes_nothing(tmp_path):
    plan = build_plan(parse_topology(TOPO, "t.yaml"), "VM1", root=str(tmp_path))
    os.makedirs(plan.state_dir)
    fake = FakeIp()
    changes = ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake)
    assert changes == ["IXP 100: peering LAN with 2 members"]
    cmds = [(ns, " ".join(a)) for ns, a in fake.calls]
    assert ("/ns/ixp100", "ip link add lan address 02:69:00:01:00:00 type bridge stp_state 0 mcast_snooping 0") in cmds
    assert ("/ns/ixp100", "ip addr replace 198.18.0.1/24 dev lan") in cmds
    assert ("/ns/ixp100", "bridge link set dev m1 learning off flood off mcast_flood off bcast_flood off") in cmds
    assert ("/ns/ixp100", "bridge fdb replace 02:69:00:01:00:02 dev m2 master static") in cmds
    assert ("/ns/1.A", "ip neigh replace 198.18.0.3 lladdr 02:69:00:01:00:02 dev ixp100 nud permanent") in cmds
    assert ("/ns/1.A", "ip neigh replace 198.18.0.1 lladdr 02:69:00:01:00:00 dev ixp100 nud permanent") in cmds
    assert not any(ns == "/ns/1.A" and "198.18.0.2 " in c for ns, c in cmds)       # not itself
    fake.calls.clear()
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake) == []
    assert all(a[:2] == ["ip", "-j"] for _, a in fake.calls)                        # reads only
    fake.ports.discard("m2")                                                        # a port lost its master
    assert ixp.apply_plan(plan, lambda n: f"/ns/{n}", run=fake) == ["IXP 100: peering LAN with 2 members"]
