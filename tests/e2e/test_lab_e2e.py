"""End to end: `lab up` of topologies/demo.yaml in both isolation modes, on this machine.

The real path throughout: emulated servers with their own OvS and sshd, the controller in the
mgmt namespace, `minet-provision --master` over SSH with host keys checked, FRR in namespaces.
Needs root, Open vSwitch, FRR, sshd. Every lab is removed again, also when a test fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from itertools import permutations

import pytest

from minet_sdn import host
from minet_sdn.lab import convergence, paths, places, quiet
from minet_sdn.lab.lab import Lab
from minet_sdn.lab import state as lab_state
from e2e_support import demo_variant, isolation, require_lab, session_drops_on_failed_link, wait_all
from minet_sdn.topology import load_topology, names

pytestmark = pytest.mark.root

require_lab("vtysh", "ping")

UP_BUDGET_S = 60.0


def _ours(topo):
    """Everything of this lab still on the machine: namespaces with its tag, state, processes."""
    left = [ns for ns in os.listdir(host.NETNS_DIR) if ns.startswith(f"{topo.tag}-")] \
        if os.path.isdir(host.NETNS_DIR) else []
    sdir = paths.state_dir(topo)
    if os.path.exists(sdir):
        left.append(sdir)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if sdir in cmd and int(pid) != os.getpid():
            left.append(f"pid {pid}: {cmd[:120]}")
    return left


@pytest.fixture(scope="module", params=["key", "tos"])
def lab(request, tmp_path_factory):
    path = demo_variant(tmp_path_factory.mktemp(f"lab-{request.param}"), f"e{request.param[0]}",
                        f"demo-{request.param}.yaml", isolation(request.param))
    topo = load_topology(path)
    try:
        t0 = time.monotonic()
        summary = Lab(path, progress=lambda m: print(m, flush=True)).up()
        elapsed = time.monotonic() - t0
        print(f"lab up ({request.param}): {elapsed:.1f} s", flush=True)
        yield path, topo, summary, elapsed
    finally:
        Lab(path, progress=quiet).remove()


def _expected_sessions(topo) -> int:
    """eBGP on every link between configured ASes (both ends) plus an iBGP full mesh per AS, in
    each family (IPv4 and IPv6 sessions: dual stack)."""
    n = sum(2 for l in topo.links if topo.ases[l.a.asn].configure and topo.ases[l.b.asn].configure)
    for as_ in topo.ases.values():
        if as_.configure:
            n += len(as_.routers) * (len(as_.routers) - 1)
    return 2 * n


def _host_ips(topo):
    from minet_sdn.topology.addressing import topology_addressing
    addressing = topology_addressing(topo)
    return {f"{asn}.{name}.host": r.host_ip for asn, a in addressing.items() if topo.ases[asn].configure
            for name, r in a.routers.items()}


def _in(topo, node: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    ns, _, _ = places.resolve_node(topo, node)
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def test_up_establishes_every_bgp_session_in_time(lab):
    path, topo, summary, elapsed = lab
    assert summary["already_up"] is False
    assert summary["bgp_sessions"]["expected"] == _expected_sessions(topo)
    assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"]
    assert elapsed < UP_BUDGET_S
    assert set(summary["servers"]) == set(topo.servers)


def test_hosts_reach_each_other(lab):
    path, topo, _, _ = lab
    hosts = _host_ips(topo)
    # sessions are up; routes may still be spreading
    wait_all(permutations(hosts, 2),
             lambda p: _in(topo, p[0], "ping", "-c", "1", "-W", "1", hosts[p[1]]).returncode == 0,
             30, "every host pair to reach each other")
    # a full 1500-byte packet across a remote link (AS3 on VM1 to AS4 on VM2 over link 8)
    assert _in(topo, "3.BERN.host", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472",
               hosts["4.LYON.host"]).returncode == 0


def test_status_shows_links_up_and_sessions_established(lab):
    path, topo, _, _ = lab
    st = Lab(path).status(json=True)
    assert st["problems"] == []
    assert st["mgmt"]["controller"]["alive"] is True
    assert [l["state"] for l in st["links"]] == ["up"] * len(topo.links)
    assert all(l["tunnel_live"] for l in st["links"] if l["remote"])
    assert all(convergence.bgp_converged(r) for r in st["bgp"])
    assert {r["router"] for r in st["bgp"]} == set(convergence.configured_routers(topo))
    text = Lab(path).status()
    assert "controller running" in text and "NOT" not in text and "DOWN" not in text


def test_exec_reaches_routers_servers_and_mgmt(lab):
    path, topo, _, _ = lab
    cli = [sys.executable, "-m", "minet_sdn.lab", "exec", path]
    out = subprocess.run(cli + ["1.ZURI", "--", "vtysh", "-c", "show bgp summary json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ipv4Unicast"]["as"] == 1
    assert out.stderr == ""          # no "% Can't open configuration file .../vtysh.conf"
    out = subprocess.run(cli + ["VM2", "--", "ovs-vsctl", "list-br"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and names.phy_bridge(topo) in out.stdout.split()
    out = subprocess.run(cli + ["mgmt", "--", "ip", "-br", "addr"], capture_output=True, text=True, timeout=30)
    assert Lab(path).status(json=True)["mgmt"]["ip"] in out.stdout
    out = subprocess.run(cli + ["NOPE", "--", "true"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_link_fail_and_restore_through_the_lab_rest(lab):
    path, topo, _, _ = lab
    link = topo.link(1)                            # remote, AS1 - AS2, with two parallel siblings
    zuri = "1.ZURI"

    def state_of_session() -> str:
        for s in convergence.bgp_sessions(topo, zuri)["sessions"]:
            if s["peer"] in (link.b.ip, link.b.ip6):
                return s["state"]
        return "absent"

    session_drops_on_failed_link(path, topo, link.id, state_of_session)


def test_up_twice_is_a_noop(lab):
    path, topo, _, _ = lab
    before = json.load(open(paths.lab_json_path(topo)))["processes"]
    t0 = time.monotonic()
    summary = Lab(path, progress=lambda m: None).up()
    assert summary["already_up"] is True
    assert time.monotonic() - t0 < 10
    after = json.load(open(paths.lab_json_path(topo)))["processes"]
    assert after == before


def test_down_leaves_nothing(lab):
    path, topo, _, _ = lab
    records = list(lab_state.LabState.load(topo).processes)
    assert Lab(path, progress=lambda m: None).down() == []
    assert _ours(topo) == []
    assert not any(r.alive() for r in records)
    assert Lab(path, progress=lambda m: None).down() == []  # twice: nothing to do
