"""End to end at class shape, as CI can afford it: 10 ASes x 8 routers (80 routers, 80 hosts) over
4 emulated servers, from the class generator (two ASes `configure: false`).

`lab up` must return converged: every session of configured routers Established (iBGP by route
reflection, eBGP on every link between configured ASes), every configured router with a route to
every configured AS, hosts of different ASes reaching each other; only the daemons a router needs;
a second `up` is a no-op; `down` removes everything and leaves a foreign namespace with a
look-alike name, and its process, alone. The 60 x 8 class is a benchmark (bench/lab_up.py --class).
"""
from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from e2e_support import require_lab
from tests.polling import wait_until
from minet_sdn import host
from minet_sdn.lab import convergence, paths, places, quiet, system
from minet_sdn.lab.lab import Lab
from minet_sdn.provision import frr
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing
from minet_sdn.topology.generate import class_topology

pytestmark = pytest.mark.root

require_lab("vtysh", "ping")


def expected_sessions(topo) -> int:
    """Both ends of: eBGP on links between configured ASes, and each AS's iBGP (route reflection),
    once per address family (dual stack runs separate IPv4 and IPv6 sessions)."""
    n = sum(2 for l in topo.links if topo.ases[l.a.asn].configure and topo.ases[l.b.asn].configure)
    for as_ in topo.ases.values():
        if as_.configure:
            rids = [(f"{as_.asn}.{r}", "") for r in as_.routers]
            n += sum(len(frr.ibgp_peers(rid, rids)) for rid, _ in rids)
    return n * (2 if topo.fabric.ipv6 else 1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    name = f"cl{secrets.token_hex(2)}"
    path = str(tmp_path_factory.mktemp("class") / "class10.yaml")
    with open(path, "w") as fh:
        fh.write(class_topology(10, servers=4, name=name))
    topo = load_topology(path)
    try:
        events = []
        summary = Lab(path, progress=lambda m: (events.append(m), print(m, flush=True))).up()
        yield path, topo, summary, events
    finally:
        Lab(path, progress=quiet).remove()


def test_up_returns_with_every_session_established(lab):
    path, topo, summary, events = lab
    assert len(topo.routers) == 80 and sum(1 for a in topo.ases.values() if not a.configure) == 2
    assert summary["bgp_sessions"]["expected"] == expected_sessions(topo) > 0
    assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"]
    assert any(m.startswith("estimate: 80 routers") for m in events)
    assert any("routers started" in m or "daemons started in" in m for m in events)   # FRR progress


def test_every_configured_router_has_a_route_to_every_configured_as(lab):
    path, topo, _, _ = lab
    missing = {r: convergence.routes_missing(topo, r) for r in convergence.configured_routers(topo)}
    assert {r: m for r, m in missing.items() if m != []} == {}


def test_hosts_in_different_ases_reach_each_other(lab):
    path, topo, _, _ = lab
    addressing = topology_addressing(topo)
    configured = [asn for asn, a in topo.ases.items() if a.configure]
    # one host per AS (a different router each time) pings one host of every other configured AS
    pairs = [(f"{a}.{topo.ases[a].routers[a % 8]}.host", addressing[b].routers[topo.ases[b].routers[b % 8]].host_ip)
             for a in configured for b in configured if a != b]
    failed = []
    for src, ip in pairs:
        ns, _, _ = places.resolve_node(topo, src)
        if subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", ip],
                          capture_output=True, timeout=30).returncode != 0:
            failed.append((src, ip))
    assert failed == []


def test_only_the_daemons_a_router_needs(lab):
    path, topo, _, _ = lab
    found = {}
    for router in ("1.ZURI", f"{len(topo.ases)}.ZURI"):       # configured / configure: false
        place = places.router_place(topo, router)
        daemons = set()
        for name in os.listdir(place.frr_dir):
            if name.endswith(".pid"):
                with open(os.path.join(place.frr_dir, name)) as fh:
                    pid = fh.read().strip()
                if os.path.exists(f"/proc/{pid}"):
                    daemons.add(name[:-4])
        found[router] = daemons
    assert found["1.ZURI"] == ({"zebra", "bgpd", "ospfd", "ospf6d"} if topo.fabric.ipv6 else {"zebra", "bgpd", "ospfd"})
    assert found[f"{len(topo.ases)}.ZURI"] == set(frr.ALL_DAEMONS)          # students may configure anything


def _frr_pids(topo, router):
    place = places.router_place(topo, router)
    pids = {}
    for name in os.listdir(place.frr_dir):
        if name.endswith(".pid"):
            with open(os.path.join(place.frr_dir, name)) as fh:
                pid = fh.read().strip()
            if os.path.exists(f"/proc/{pid}"):
                pids[name[:-4]] = int(pid)
    return pids


def _proc_field(pid, name, field):
    with open(f"/proc/{pid}/{name}") as fh:
        for line in fh:
            if line.startswith(field):
                return line.split()[1]
    return None


def test_frr_shares_its_pages(lab):
    """fabric.share_memory (default): every FRR daemon runs with ASLR off and opted into KSM, and
    once ksmd has merged, the routers hold far less than their unmerged ~24 MB of PSS each."""
    from minet_sdn import host
    why = host.page_merging_unavailable()
    if why:
        pytest.skip(f"page merging is not possible on this machine: {why}")
    path, topo, _, _ = lab
    pids = [pid for r in topo.routers for pid in _frr_pids(topo, r).values()]
    assert len(pids) >= 4 * len(topo.routers) - 8
    for pid in pids:
        with open(f"/proc/{pid}/personality") as fh:
            assert int(fh.read(), 16) & 0x0040000, f"pid {pid} runs with ASLR on"     # ADDR_NO_RANDOMIZE
        assert _proc_field(pid, "ksm_stat", "ksm_merge_any") == "yes", f"pid {pid} is not opted into KSM"

    def pss_per_router():
        total = sum(int(_proc_field(pid, "smaps_rollup", "Pss:") or 0) for pid in pids)
        return total / 1024 / len(topo.routers)
    # KSM merges pages over minutes; summing every daemon's smaps_rollup is not free: every 5 s
    assert wait_until(lambda: pss_per_router() <= 10, 300, interval=5), f"PSS per router {pss_per_router():.1f} MB"


def test_second_up_is_a_noop(lab):
    path, topo, _, _ = lab
    summary = Lab(path, progress=lambda m: None).up()
    assert summary["already_up"] is True
    assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"]


def test_down_removes_everything_and_nothing_foreign(lab):
    path, topo, _, _ = lab
    squatter = f"{topo.tag}-99.ZURI"              # looks like ours, is not in lab.json nor marked
    subprocess.run(["ip", "netns", "add", squatter], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", squatter, "sleep", "300"])
    try:
        wait_until(lambda: system.netns_pids(squatter), 5, what=f"a process in {squatter}")
        assert Lab(path, progress=lambda m: None).down() == []
        left = [ns for ns in os.listdir(host.NETNS_DIR) if ns.startswith(f"{topo.tag}-") and ns != squatter]
        assert left == [] and not os.path.exists(paths.state_dir(topo))
        assert os.path.exists(os.path.join(host.NETNS_DIR, squatter)) and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", squatter])
