"""lab.routes_missing: every configured AS's prefix in the router's table, IPv4 and (dual stack)
IPv6, read through a fake vtysh answering like FRR's `show ip[v6] route json`."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from minet_sdn.lab import lab as L
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing, topology_addressing6

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "demo.yaml")


def topo_with(tmp_path, ipv6: bool):
    with open(DEMO) as fh:
        data = yaml.safe_load(fh)
    data.setdefault("fabric", {})["ipv6"] = ipv6
    data["name"] = f"rt{int(ipv6)}"
    path = tmp_path / f"t{int(ipv6)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_topology(str(path))


def fake_vtysh(topo, drop4=(), drop6=(), calls=None, fail6=False):
    a4 = topology_addressing(topo)
    a6 = topology_addressing6(topo, a4)

    def vtysh(place, command, timeout=10):
        if calls is not None:
            calls.append(command)
        if command == "show ip route json":
            return json.dumps({a4[asn].prefix: [{}] for asn in a4 if asn not in drop4})
        if command == "show ipv6 route json":
            return None if fail6 else json.dumps({a6[asn].prefix: [{}] for asn in a6 if asn not in drop6})
        raise AssertionError(command)
    return vtysh


@pytest.fixture
def no_place(monkeypatch):
    monkeypatch.setattr(L, "router_place", lambda topo, router: None)


def test_dual_stack_checks_ipv6_prefixes_too(tmp_path, monkeypatch, no_place):
    topo = topo_with(tmp_path, True)
    router = L.configured_routers(topo)[0]
    own = topo.routers[router].asn
    others = [a for a, x in topo.ases.items() if x.configure and a != own]
    calls = []
    monkeypatch.setattr(L, "vtysh", fake_vtysh(topo, calls=calls))
    assert L.routes_missing(topo, router) == []
    assert calls == ["show ip route json", "show ipv6 route json"]
    monkeypatch.setattr(L, "vtysh", fake_vtysh(topo, drop6={others[1]}))
    assert L.routes_missing(topo, router) == [others[1]]          # IPv4 complete, IPv6 not
    monkeypatch.setattr(L, "vtysh", fake_vtysh(topo, drop6={own}))
    assert L.routes_missing(topo, router) == []                   # its own prefix is not asked for
    monkeypatch.setattr(L, "vtysh", fake_vtysh(topo, fail6=True))
    assert L.routes_missing(topo, router) is None                 # no answer is not "complete"


def test_ipv6_not_read_while_ipv4_is_incomplete(tmp_path, monkeypatch, no_place):
    topo = topo_with(tmp_path, True)
    router = L.configured_routers(topo)[0]
    own = topo.routers[router].asn
    other = next(a for a, x in topo.ases.items() if x.configure and a != own)
    calls = []
    monkeypatch.setattr(L, "vtysh", fake_vtysh(topo, drop4={other}, drop6={other}, calls=calls))
    assert L.routes_missing(topo, router) == [other]
    assert calls == ["show ip route json"]


def test_ipv4_only_topology_never_asks_for_ipv6(tmp_path, monkeypatch, no_place):
    topo = topo_with(tmp_path, False)
    router = L.configured_routers(topo)[0]
    calls = []
    monkeypatch.setattr(L, "vtysh", fake_vtysh(topo, calls=calls))
    assert L.routes_missing(topo, router) == []
    assert calls == ["show ip route json"]
