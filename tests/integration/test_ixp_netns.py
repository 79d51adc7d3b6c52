"""An IXP for real: minet-provision builds the route server and the peering LAN; members peer
with the route server only, learn each other's prefixes with the other member as next hop
(transparent route server: no route server AS in the path), and reach each other's hosts straight
over the LAN. The LAN floods nothing and learns nothing: a frame to an unknown MAC goes nowhere.

Needs root, Open vSwitch, FRR (the fixtures' emulated server); skipped otherwise."""
from __future__ import annotations

import json

import pytest

from provision_fixtures import Site, emulated_servers, qdiscs, sh, skip_reason, write_topology

from minet_sdn.importers import to_yaml

from tests.polling import wait_until

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]


def topology(name):
    return {"name": name, "servers": {"VM1": {"underlay_ip": "192.0.2.1"}},
            "ases": {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM1", "routers": ["B"]},
                     3: {"server": "VM1", "routers": ["C"]}},
            "ixps": {100: {"server": "VM1", "members": ["1.A", "2.B", {"router": "3.C", "throughput": "50mbit"}]}},
            "links": []}


def test_route_server_peering_lan_and_isolation():
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        path = write_topology(vm1, to_yaml(topology(prefix.value)))
        site = Site(prefix, vm1, path)
        ns, vtysh = site.ns, site.vtysh_json
        try:
            res = vm1.provision(path, "--json")
            assert res.returncode == 0, res.stderr

            def all_up():
                peers = vtysh("ixp100", "show bgp summary json").get("ipv4Unicast", {}).get("peers", {})
                return len(peers) == 3 and all(p.get("state") == "Established" for p in peers.values())
            assert wait_until(all_up, 60, interval=0.5), vtysh("ixp100", "show bgp summary json")

            def learned():
                routes = vtysh("1.A", "show ip bgp json").get("routes", {})
                return routes if {"10.0.2.0/24", "10.0.3.0/24"} <= set(routes) else None
            routes = wait_until(learned, 60, interval=0.5)
            assert routes, vtysh("1.A", "show ip bgp json")
            best = [p for p in routes["10.0.2.0/24"] if p.get("bestpath") or p.get("valid")][0]
            assert best["nexthops"][0]["ip"] == "198.18.0.3"           # member B itself, not the route server
            assert best.get("path", "").split() == ["2"]                # the route server adds no AS
            # hosts reach each other across the LAN
            sh("ip", "netns", "exec", ns("1.A.host"), "ping", "-c", "2", "-W", "2", "10.0.3.130")
            # the LAN: no flooding, no learning; static ARP on the members
            links = json.loads(sh("ip", "netns", "exec", ns("ixp100"), "bridge", "-j", "-d", "link", "show").stdout)
            ports = {l["ifname"]: l for l in links}
            assert set(ports) == {"m1", "m2", "m3"}
            assert all(p.get("flood") is False and p.get("learning") is False for p in ports.values()), ports
            neigh = sh("ip", "netns", "exec", ns("1.A"), "ip", "neigh", "show", "dev", "ixp100").stdout
            assert "198.18.0.3 lladdr 02:69:00:01:00:02 PERMANENT" in neigh
            # an address on the LAN that is nobody's: not answered (no ARP leaves, nothing floods)
            assert sh("ip", "netns", "exec", ns("1.A"), "ping", "-c", "1", "-W", "1", "198.18.0.77",
                      check=False).returncode != 0
            # the member's shaping applies to its LAN port
            q = qdiscs(ns("3.C"), "ixp100")
            assert q[0]["kind"] == "tbf" and q[0]["options"]["rate"] == 50_000_000 // 8
            again = vm1.provision(path, "--json")
            assert again.returncode == 0 and json.loads(again.stdout)["n_changes"] == 0, again.stdout
        finally:
            vm1.provision(path, "--down")
