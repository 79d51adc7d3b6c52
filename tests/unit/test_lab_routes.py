"""lab.routes_missing: every configured AS's prefix in the router's table, IPv4 and (dual stack)
IPv6, read through a fake vtysh answering like FRR's `show ip[v6] route json`."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from minet_sdn.lab import convergence
from minet_sdn.topology.places import NodePlace
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
    monkeypatch.setattr(convergence, "router_place", lambda topo, router: None)


def test_dual_stack_checks_ipv6_prefixes_too(tmp_path, monkeypatch, no_place):
    topo = topo_with(tmp_path, True)
    router = convergence.configured_routers(topo)[0]
    own = topo.routers[router].asn
    others = [a for a, x in topo.ases.items() if x.configure and a != own]
    calls = []
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, calls=calls))
    assert convergence.routes_missing(topo, router) == []
    assert calls == ["show ip route json", "show ipv6 route json"]
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, drop6={others[1]}))
    assert convergence.routes_missing(topo, router) == [others[1]]  # IPv4 complete, IPv6 not
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, drop6={own}))
    assert convergence.routes_missing(topo, router) == []           # its own prefix is not asked for
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, fail6=True))
    assert convergence.routes_missing(topo, router) is None         # no answer is not "complete"


def test_ipv6_not_read_while_ipv4_is_incomplete(tmp_path, monkeypatch, no_place):
    topo = topo_with(tmp_path, True)
    router = convergence.configured_routers(topo)[0]
    own = topo.routers[router].asn
    other = next(a for a, x in topo.ases.items() if x.configure and a != own)
    calls = []
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, drop4={other}, drop6={other}, calls=calls))
    assert convergence.routes_missing(topo, router) == [other]
    assert calls == ["show ip route json"]


def test_ipv4_only_topology_never_asks_for_ipv6(tmp_path, monkeypatch, no_place):
    topo = topo_with(tmp_path, False)
    router = convergence.configured_routers(topo)[0]
    calls = []
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, calls=calls))
    assert convergence.routes_missing(topo, router) == []
    assert calls == ["show ip route json"]


# ---- asking a daemon over its own vty socket (what vtysh does, without starting vtysh) -----------

def fake_daemon(path, answers, status=0, chunk=7):
    """A unix socket at `path` answering one command like an FRR daemon's vty in vtysh mode: the
    output in small pieces, then three NULs and the status byte."""
    import socket
    import threading
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    got = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while not buf.endswith(b"\0"):
                    data = conn.recv(1024)
                    if not data:
                        break
                    buf += data
                cmd = buf.rstrip(b"\0").decode()
                got.append(cmd)
                out = answers.get(cmd, "% Unknown command").encode() + b"\0\0\0" + bytes([status if cmd in answers else 1])
                for i in range(0, len(out), chunk):
                    conn.sendall(out[i:i + chunk])
    threading.Thread(target=serve, daemon=True).start()
    return srv, got


def test_vtysh_asks_the_daemon_socket_directly(tmp_path, monkeypatch):
    import subprocess
    big = json.dumps({"peers": {f"10.0.0.{i}": {"state": "Established"} for i in range(200)}})
    srv, got = fake_daemon(tmp_path / "bgpd.vty", {"show bgp summary json": big})
    zsrv, zgot = fake_daemon(tmp_path / "zebra.vty", {"show ipv6 route json": "{}"})

    def no_vtysh(*a, **k):
        raise AssertionError("vtysh started")
    monkeypatch.setattr(subprocess, "run", no_vtysh)
    place = NodePlace(id="1.A", kind="router", asn=1, server="S", ns="ns", frr_dir=str(tmp_path))
    try:
        assert convergence.vtysh(place, "show bgp summary json") == big  # reassembled from 7-byte pieces
        assert convergence.vtysh(place, "show ipv6 route json") == "{}"
        assert got == ["show bgp summary json"] and zgot == ["show ipv6 route json"]
        assert convergence.vty_direct(str(tmp_path / "bgpd.vty"), "show nonsense") is None           # status 1
        assert convergence.vty_direct(str(tmp_path / "ospfd.vty"), "show bgp summary json") is None  # no socket
    finally:
        srv.close()
        zsrv.close()


def test_vtysh_falls_back_to_vtysh_when_the_socket_does_not_answer(tmp_path, monkeypatch):
    import subprocess
    calls = []

    class Done:
        returncode, stdout = 0, '{"from": "vtysh"}'

    def fake_run(argv, **kw):
        calls.append(argv)
        return Done()
    monkeypatch.setattr(subprocess, "run", fake_run)
    place = NodePlace(id="1.A", kind="router", asn=1, server="S", ns="ns", frr_dir=str(tmp_path))
    assert convergence.vtysh(place, "show bgp summary json") == '{"from": "vtysh"}'  # no bgpd.vty here
    assert convergence.vtysh(place, "show running-config") == '{"from": "vtysh"}'    # not a polled command
    assert [c[0] for c in calls] == ["vtysh", "vtysh"]
    docker = NodePlace(id="1.A", kind="router", asn=1, server="S", ns="c1", frr_dir=str(tmp_path), backend="docker")
    assert convergence.vtysh(docker, "show bgp summary json") == '{"from": "vtysh"}'
    assert calls[-1][:3] == ["docker", "exec", "c1"]


# ---- which routes to wait for: the students' ASes are silent -------------------------------------

STUBS = """
name: stubs
servers: [VM1]
ases:
  1: {server: VM1, routers: [ZURI], prefix: 10.1.0.0/16}
  2: {server: VM1, routers: [ZURI], prefix: 10.2.0.0/16}
  3: {server: VM1, routers: [ZURI], prefix: 10.3.0.0/16, configure: false}
  5: {server: VM1, routers: [ZURI], prefix: 10.5.0.0/16}
  6: {server: VM1, routers: [ZURI], prefix: 10.6.0.0/16}
links:
  - {a: 1.ZURI, b: 2.ZURI, rel: peer}
  - {a: 1.ZURI, b: 3.ZURI, rel: provider}
  - {a: 3.ZURI, b: 5.ZURI, rel: provider}     # 5 hangs below the students' AS 3 only
  - {a: 5.ZURI, b: 6.ZURI, rel: peer}
"""


def test_routes_expected_only_where_configured_ases_carry_them(tmp_path, monkeypatch, no_place):
    """The mini-Internet's layout: stubs 5 and 6 reach the tier 1s only through a students' AS;
    until the students configure it, 1 and 5 cannot have each other's routes, and `lab up` must not
    wait for them (it used to, forever)."""
    from minet_sdn.provision import converge
    path = tmp_path / "stubs.yaml"
    path.write_text(STUBS)
    topo = load_topology(str(path))
    assert converge.expected_routes(topo) == {1: [2], 2: [1], 5: [6], 6: [5]}
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo))
    assert convergence.routes_missing(topo, "5.ZURI") == []
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, drop4={6}))
    assert convergence.routes_missing(topo, "5.ZURI") == [6]          # its peer's route is still awaited
    monkeypatch.setattr(convergence, "vtysh", fake_vtysh(topo, drop4={1, 2}))
    assert convergence.routes_missing(topo, "5.ZURI") == []           # the tier 1s' are not
