"""Class-scale pure parts: the class topology generator, iBGP route reflection, daemon selection,
start-up concurrency and the one-line failure summary."""
from __future__ import annotations

import subprocess
import sys

import pytest

from minet_sdn.provision import frr
from minet_sdn.provision.apply import DaemonFailure, start_jobs, summarise_failures
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import load_topology
from minet_sdn.topology.generate import CLASS_ROUTERS, GenerateError, class_roles, class_topology


def _load(tmp_path, text, name="t.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_topology(str(path))


@pytest.mark.parametrize("n", [6, 10, 20, 60])
def test_class_topology_is_valid_and_class_shaped(tmp_path, n):
    topo = _load(tmp_path, class_topology(n, servers=4, name=f"c{n}"))
    assert len(topo.ases) == n and len(topo.servers) == 4
    assert all(tuple(a.routers) == CLASS_ROUTERS for a in topo.ases.values())
    assert sorted(asn for asn, a in topo.ases.items() if not a.configure) == [n - 1, n]
    tier1, transit, stubs = class_roles(n)
    rels = {(l.a.asn, l.b.asn): l.rel for l in topo.links}
    for x in tier1:                                      # tier-1 clique of peerings
        for y in tier1:
            if x < y:
                assert rels[(x, y)] == "peer"
    for asn in transit + stubs:                          # everyone below tier 1 has two providers
        providers = [a for (a, b), rel in rels.items() if b == asn and rel == "provider"]
        assert len(providers) == (2 if (asn in transit or len(transit) > 1) else 1), asn
        assert all(p in (tier1 if asn in transit else transit) for p in providers)
    assert any(l.remote for l in topo.links) and len({a.server for a in topo.ases.values()}) == 4


def test_class_topology_is_deterministic_and_rejects_bad_sizes():
    assert class_topology(20) == class_topology(20)
    with pytest.raises(GenerateError):
        class_topology(3)
    with pytest.raises(GenerateError):
        class_topology(10, routers=9)


def test_generate_cli_writes_the_shipped_class_file(tmp_path):
    out = tmp_path / "class.yaml"
    res = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "generate", "class", "--ases", "60",
                          "--servers", "4", "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    with open("topologies/class.yaml") as fh:
        assert out.read_text() == fh.read()
    bad = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "generate", "class", "--ases", "2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "at least 4" in bad.stderr and "Traceback" not in bad.stderr


def test_route_reflection_from_four_routers_full_mesh_below():
    small = [("1.A", "10.0.1.1"), ("1.B", "10.0.1.2"), ("1.C", "10.0.1.3")]
    assert [p.router for p in frr.ibgp_peers("1.A", small)] == ["1.B", "1.C"]
    assert not any(p.client for r, _ in small for p in frr.ibgp_peers(r, small))
    eight = [(f"1.{n}", f"10.0.1.{i}") for i, n in enumerate(CLASS_ROUTERS, start=1)]
    assert frr.reflectors([r for r, _ in eight]) == ("1.ZURI", "1.MUNI")
    rr = frr.ibgp_peers("1.ZURI", eight)
    assert len(rr) == 7 and {p.router for p in rr if not p.client} == {"1.MUNI"}
    client = frr.ibgp_peers("1.VIEN", eight)
    assert [p.router for p in client] == ["1.ZURI", "1.MUNI"] and not any(p.client for p in client)
    sessions = {frozenset((r, p.router)) for r, _ in eight for p in frr.ibgp_peers(r, eight)}
    assert len(sessions) == 13                          # 1 between the reflectors + 2 x 6 clients
    for r, _ in eight:                                  # every session is configured on both ends
        for p in frr.ibgp_peers(r, eight):
            assert r in [q.router for q in frr.ibgp_peers(p.router, eight)]


def test_rendered_config_marks_clients_and_iBGP_timers(tmp_path):
    topo = _load(tmp_path, class_topology(4, servers=1, name="c4", unconfigured=0))
    plan = build_plan(topo, "VM1", root=str(tmp_path))
    conf = {r.node: r.config for r in plan.routers}
    zuri = conf["1.ZURI"].splitlines()
    clients = [l for l in zuri if l.endswith("route-reflector-client")]
    assert sum(1 for l in clients if ":" not in l) == 6      # IPv4 sessions to the other 6 routers
    assert sum(1 for l in clients if ":" in l) == 6          # and the same on their IPv6 loopbacks
    assert not any(l.endswith("route-reflector-client") for l in conf["1.GENE"].splitlines())
    assert " neighbor 10.0.1.5 timers 10 30" in zuri          # iBGP to MUNI, the other reflector


def test_daemons_only_what_the_config_uses():
    assert frr.daemons_for("hostname x\nrouter ospf\nrouter bgp 1\n") == ("zebra", "bgpd", "ospfd")
    assert frr.daemons_for("ip route 10.0.0.0/8 blackhole\nrouter bgp 1\n") == ("zebra", "staticd", "bgpd")
    assert frr.daemons_for("ipv6 route ::/0 blackhole\nrouter ospf6\n") == ("zebra", "staticd", "ospf6d")
    assert frr.daemons_for("router ospf\nrouter ospf6\n") == ("zebra", "ospfd", "ospf6d")
    assert frr.daemons_for("hostname x\n", configure=False) == frr.ALL_DAEMONS   # students may configure all
    assert frr.daemons_for("hostname x\n", configure=False, ipv6=False) == ("zebra", "staticd", "bgpd", "ospfd")


def test_start_jobs_sized_to_the_machine():
    assert start_jobs({}, cpus=2) == 2
    assert start_jobs({}, cpus=1) == 2
    assert start_jobs({}, cpus=24) == 24
    assert start_jobs({"MINET_FRR_JOBS": "5"}, cpus=2) == 5
    assert start_jobs({"MINET_FRR_JOBS": "x"}, cpus=8) == 8


def test_failure_summary_is_one_line_per_cause():
    fails = ([DaemonFailure(f"16.R{i}", "ospfd", "not ready after 60 s (killed); log: ospfd: boom") for i in range(41)]
             + [DaemonFailure(f"17.R{i}", "bgpd", "exit status 1; log: bind: Address in use\nsecond") for i in range(16)]
             + [DaemonFailure("18.R1", "bgpd", "not tried (too many failures before)", tried=False)])
    line = summarise_failures(fails, 120, "/x/fail.log")
    assert line.startswith("57 of 120 daemons did not start: ospfd (41), bgpd (16) (1 more not started after that); "
                           "first: router 16.R0 ospfd: not ready after 60 s (killed); log: ospfd: boom; ")
    assert line.endswith("full list in /x/fail.log") and "\n" not in line
    long = summarise_failures([DaemonFailure("1.A", "zebra", "x" * 5000)] * 300, 300, "/l")
    assert len(long) < 500


def test_capacity_estimate_and_refusal():
    from minet_sdn.provision import capacity
    need = capacity.estimate([("zebra", "bgpd", "ospfd")] * 480, servers=4)
    assert need.routers == 480 and need.processes == 480 * 3 + 12
    assert 9000 < need.memory_mb < 14000                    # ~25 MB per router with the kernel's share
    assert capacity.refusal(need, available_mb=22000, free_pids=30000) is None
    why = capacity.refusal(need, available_mb=8000, free_pids=30000, where="server S1")
    assert why and "480 routers" in why and "server S1 has 7.8 GiB available" in why and "\n" not in why
    assert "pids" in capacity.refusal(need, available_mb=None, free_pids=1000)
    assert capacity.enabled({}) and not capacity.enabled({"MINET_CAPACITY_CHECK": "0"})


def test_neighbour_table_limits_grow_with_routers_never_shrink():
    from minet_sdn.provision.apply import neighbour_limits
    assert neighbour_limits(10, (512, 1024)) == (888, 1184)
    assert neighbour_limits(480, (512, 1024)) == (6528, 8704)
    assert neighbour_limits(480, (20000, 30000)) is None          # already enough: left alone
    assert neighbour_limits(480, (9000, 4000)) == (9000, 8704)      # gc_thresh2 never lowered


def test_daemons_start_with_one_malloc_arena_and_trimmed_heap(tmp_path):
    """Every FRR daemon is launched through `env` with the glibc settings that cut its PSS."""
    topo = _load(tmp_path, class_topology(4, servers=1, name="c4", unconfigured=0))
    plan = build_plan(topo, "VM1", root=str(tmp_path))
    router = plan.routers[0]
    argv = router.daemon_args("bgpd", "c4-1_ZURI", "/usr/lib/frr")
    i = argv.index("/usr/lib/frr/bgpd")
    assert argv[0] == "env" and "--limit-fds" in argv[i:]
    assert argv[argv.index("--limit-fds") + 1] == "256"                  # a configured class router
    assert set(argv[1:i]) == {"MALLOC_ARENA_MAX=1", "MALLOC_TRIM_THRESHOLD_=0", "MALLOC_TOP_PAD_=0",
                              "GLIBC_TUNABLES=glibc.malloc.tcache_count=0"}
    # the prefix really runs the program with that environment (here a stand-in for the daemon)
    probe = [*argv[:i], sys.executable, "-c", "import os; print(os.environ['MALLOC_ARENA_MAX'], os.environ['GLIBC_TUNABLES'])"]
    out = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "glibc.malloc.tcache_count=0"]


def test_limit_fds_by_router():
    from minet_sdn.provision.plan import limit_fds
    assert limit_fds(False, "") == 1024                       # a student's router: anything may come
    cfg = "router bgp 1\n" + "".join(f" neighbor 10.0.0.{i} remote-as {i}\n" for i in range(20))
    assert limit_fds(True, cfg) == 256
    many = "router bgp 1\n" + "".join(f" neighbor fd00::{i:x} remote-as {i}\n" for i in range(300))
    many += " neighbor fd00::1 route-map X in\n"             # not a session
    assert limit_fds(True, many) == 128 + 600                 # a route server with 300 clients


def test_start_waits_for_memory_while_pages_merge_then_gives_up(tmp_path, monkeypatch):
    """With KSM on, a router starts only once MemAvailable is back over MEMORY_LOW_MB; after
    MEMORY_WAIT seconds under it, it fails with a reason naming the memory (and no daemon starts)."""
    import threading
    from minet_sdn.provision import apply as ap
    topo = _load(tmp_path, class_topology(6, servers=1, name="m"))
    prov = ap.Provisioner(build_plan(topo, "VM1", root=str(tmp_path)))
    router = prov.plan.routers[0]
    readings = iter([100.0, 200.0, ap.MEMORY_LOW_MB + 1])
    waits = []
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda t: waits.append(t))
    assert prov._wait_for_memory(router, stop, available=lambda: next(readings)) is None
    assert waits == [1.0, 1.0]
    clock = iter([0.0, 0.0, ap.MEMORY_WAIT + 1, ap.MEMORY_WAIT + 1])
    monkeypatch.setattr(ap.time, "monotonic", lambda: next(clock))
    why = prov._wait_for_memory(router, stop, available=lambda: 100.0)
    assert why.startswith("not started: 100 MB of memory available, under 1536 MB for 301 s")
    prov._merging = True
    monkeypatch.setattr(prov, "_wait_for_memory", lambda r, s: "not started: no memory")
    monkeypatch.setattr(prov, "_spawn", lambda *a: pytest.fail("a daemon was started"))
    started, failed = prov._start_router(router, list(router.daemons), threading.Event())
    assert started == 0 and {f.why for f in failed} == {"not started: no memory"}
    assert [f.daemon for f in failed] == list(router.daemons) and not any(f.tried for f in failed)


def test_capacity_estimate_with_shared_pages():
    """Merged pages: the class lab's need drops to what it holds once ksmd merged it."""
    from minet_sdn.provision import capacity
    daemons = [("zebra", "bgpd", "ospfd", "ospf6d")] * 480
    private, shared = capacity.estimate(daemons, servers=4), capacity.estimate(daemons, servers=4, shared=True)
    assert shared.processes == private.processes and shared.threads == private.threads
    assert 3000 < shared.memory_mb < 5500 < 12000 < private.memory_mb     # measured 4.1 / 13.5 GiB
    assert "pages shared" in shared.line() and "pages shared" not in private.line()
    geant = capacity.estimate([("zebra", "bgpd", "ospfd", "ospf6d")] * 1157, servers=4, shared=True)
    assert capacity.refusal(geant, available_mb=22000, free_pids=60000) is None
