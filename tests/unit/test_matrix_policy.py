"""The measured connectivity matrix against the valley-free model (watch/matrix.check_policy with
topology/policy.expected_pairs): a lab whose answers follow the policies passes; an answer across two
peerings (a leak) and a lost customer route (missing) are each named; a source whose probe failed
is reported, not counted as unreachable."""
from __future__ import annotations

from minet_sdn.topology.policy import expected_pairs
from minet_sdn.watch import matrix as M
from tests.support.topologies import one_router_ases

# 1 and 2 peer, 3 peers with 2: 1 must not reach 3 (two peer edges); 4 is 1's customer, 5 is 3's.
LINKS = (("1.A", "2.B", "peer"), ("2.B", "3.C", "peer"), ("1.A", "4.D", "provider"), ("3.C", "5.E", "provider"))


def _topo():
    return one_router_ases(5, LINKS)


def _round(topo, answers):
    """A matrix round through a fake runner: `answers(src_asn, dst_asn)` says whether a ping returns."""
    by_ip = {t.ip: t.asn for t in M.targets(topo)}

    def runner(src, script):
        lines = []
        for ip, dst in by_ip.items():
            if dst != src.asn and ip in script:
                lines.append(f"{ip} is alive (0.10 ms)" if answers(src.asn, dst) else f"{ip} is unreachable")
        return 0, "\n".join(lines) + "\n", ""
    return M.build_matrix(topo, runner, parallel=2)


def test_model_forbids_two_peerings_and_allows_customers():
    pairs = expected_pairs(_topo())
    assert not pairs[(1, 3)] and not pairs[(4, 5)] and not pairs[(4, 3)]
    assert pairs[(1, 2)] and pairs[(4, 2)] and pairs[(2, 5)]


def test_matrix_that_follows_the_policies_passes():
    topo = _topo()
    expected = expected_pairs(topo)
    check = M.check_policy(_round(topo, lambda s, d: expected[(s, d)]), expected)
    assert check.ok and check.checked == 20


def test_leak_and_missing_route_are_named():
    topo = _topo()
    expected = expected_pairs(topo)

    def answers(s, d):
        if {s, d} == {1, 3}:
            return True                      # a leak: 2 passed one peer's routes to another
        if {s, d} == {2, 5}:
            return False                     # 3 did not pass its customer's route to its peer
        return expected[(s, d)]
    check = M.check_policy(_round(topo, answers), expected)
    assert not check.ok
    assert sorted(check.leaked) == [(1, 3), (3, 1)]
    assert sorted(check.missing) == [(2, 5), (5, 2)]


def test_failed_probe_is_reported_not_counted():
    topo = _topo()
    expected = expected_pairs(topo)
    by_ip = {t.ip: t.asn for t in M.targets(topo)}

    def runner(src, script):
        if src.asn == 4:
            return 127, "", "no such node"
        return 0, "\n".join(f"{ip} is alive" for ip, d in by_ip.items()
                            if d != src.asn and expected[(src.asn, d)]) + "\n", ""
    check = M.check_policy(M.build_matrix(topo, runner), expected)
    assert check.unprobed == [4] and not check.missing and not check.leaked and check.checked == 16
    assert not check.ok
