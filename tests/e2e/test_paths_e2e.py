"""End to end: where the ASes run does not change the paths between them.

topologies/demo.yaml distributed over its three servers (key and tos isolation) and the same
topology with every AS on one server (VM1 only: every inter-AS link a local veth, no tunnel, no
controller in the path) must route alike: for every ordered pair of hosts of different configured
ASes, traceroute (ICMP, numeric, short timeouts) gives hop addresses; each is mapped to the AS
owning it (the addressing plan for addresses inside an AS, the model for inter-AS link addresses)
and the AS-level path must be the same in both labs. Paths must also be valley-free (Gao-Rexford:
up to providers, at most one peer link, down to customers) and follow existing links.

Needs root, Open vSwitch, FRR, sshd, traceroute. Every lab is removed, also when a test fails.
"""
from __future__ import annotations

import subprocess
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest

from minet_sdn.lab import observe, places, quiet
from minet_sdn.lab.lab import Lab
from e2e_support import demo_variant, isolation, require_lab, traceroute_hops
from tests.polling import wait_until
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing

pytestmark = pytest.mark.root

require_lab("vtysh", "ping", "traceroute")

PATHS_TIMEOUT_S = 60.0        # routes may still spread when lab_up returns; ICMP errors are rate-limited

AsPath = Tuple[int, ...]


def _distributed(directory, mode: str) -> str:
    return demo_variant(directory, f"p{mode[0]}", f"demo-{mode}.yaml", isolation(mode))


def _one_server(directory) -> str:
    """demo.yaml with every AS on VM1 and VM1 the only server (another name)."""
    def on_vm1(data: dict) -> None:
        data["servers"] = {"VM1": data["servers"]["VM1"]}
        for as_ in data["ases"].values():
            as_["server"] = "VM1"
    return demo_variant(directory, "p1", "demo-one-server.yaml", on_vm1)


class _Lab:
    def __init__(self, path: str):
        self.path = path
        self.topo = load_topology(path)
        self.paths: Optional[Dict[Tuple[str, str], AsPath]] = None     # computed once, on demand

    def __enter__(self):
        try:
            Lab(self.path, progress=lambda m: print(m, flush=True)).up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        Lab(self.path, progress=quiet).remove()

    def as_paths(self) -> Dict[Tuple[str, str], AsPath]:
        if self.paths is None:
            self.paths = stable_as_paths(self.topo)
        return self.paths


@pytest.fixture(scope="module")
def one_server(tmp_path_factory):
    with _Lab(_one_server(tmp_path_factory.mktemp("paths-one"))) as lab:
        assert len(lab.topo.servers) == 1 and not lab.topo.remote_links
        yield lab


@pytest.fixture(scope="module", params=["key", "tos"])
def distributed(request, tmp_path_factory):
    with _Lab(_distributed(tmp_path_factory.mktemp(f"paths-{request.param}"), request.param)) as lab:
        assert len(lab.topo.servers) == 3 and lab.topo.remote_links
        yield lab


# ---- addresses to ASes, traceroute to AS paths ---------------------------------------------------

def address_owners(topo) -> Dict[str, int]:
    """Every IPv4 address a router or host of the topology holds -> its AS."""
    owners: Dict[str, int] = {}
    for asn, a in topology_addressing(topo).items():
        for r in a.routers.values():
            owners.update({r.loopback: asn, r.host_router_ip: asn, r.host_ip: asn})
        for link in a.links:
            owners.update({link.a_ip: asn, link.b_ip: asn})
    for link in topo.links:
        owners.update({link.a.ip: link.a.asn, link.b.ip: link.b.asn})
    return owners


def hosts(topo) -> Dict[str, Tuple[int, str]]:
    """{host node: (asn, address)} of every configured AS."""
    return {f"{asn}.{name}.host": (asn, r.host_ip) for asn, a in topology_addressing(topo).items()
            if topo.ases[asn].configure for name, r in a.routers.items()}


def traceroute(topo, node: str, dst: str) -> List[Optional[str]]:
    ns = places.resolve_node(topo, node)[0]
    out = subprocess.run(["ip", "netns", "exec", ns, "traceroute", "-n", "-I", "-q", "1", "-w", "1",
                          "-m", "12", dst], capture_output=True, text=True, timeout=60).stdout
    return traceroute_hops(out)


def as_path(hops: List[str], owners: Dict[str, int]) -> AsPath:
    path: List[int] = []
    for hop in hops:
        assert hop in owners, f"hop {hop} belongs to no router or host of the topology"
        if not path or path[-1] != owners[hop]:
            path.append(owners[hop])
    return tuple(path)


def _as_paths(topo) -> Dict[Tuple[str, str], AsPath]:
    """AS path of every ordered pair of hosts of different configured ASes.

    Each source host runs its traceroutes one after the other (its first router answers each with
    a rate-limited ICMP error); sources run in parallel. A traceroute with a silent hop or that
    does not reach its destination is repeated until PATHS_TIMEOUT_S.
    """
    owners = address_owners(topo)
    hs = hosts(topo)
    results: Dict[Tuple[str, str], AsPath] = {}
    failures: Dict[Tuple[str, str], list] = {}
    deadline = time.monotonic() + PATHS_TIMEOUT_S

    def run_source(src: str) -> None:
        try:
            traceroutes_of(src)
        except BaseException as exc:       # reported by the caller, not lost in the thread
            failures[(src, "*")] = [repr(exc)]

    def traceroutes_of(src: str) -> None:
        for dst, (dst_as, dst_ip) in hs.items():
            if hs[src][0] == dst_as:
                continue
            while True:
                hops = traceroute(topo, src, dst_ip)
                if hops and hops[-1] == dst_ip and None not in hops:
                    results[(src, dst)] = as_path(hops, owners)     # type: ignore[arg-type]
                    break
                if time.monotonic() > deadline:
                    failures[(src, dst)] = hops
                    break
                time.sleep(1.0)

    threads = [threading.Thread(target=run_source, args=(src,)) for src in hs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"incomplete traceroutes: {failures}"
    assert len(results) == sum(1 for a in hs for b in hs if hs[a][0] != hs[b][0])
    return results


routes_complete = observe.routes_complete


def stable_as_paths(topo) -> Dict[Tuple[str, str], AsPath]:
    """The AS paths once routing has settled: every route present, then two rounds in a row alike.

    lab_up returns when the sessions are up, not when the best routes have spread: a traceroute
    taken too early can follow a path that is about to be replaced.
    """
    wait_until(lambda: routes_complete(topo), PATHS_TIMEOUT_S, interval=1.0,
               what="routes to every configured AS to spread")
    previous = _as_paths(topo)
    for _ in range(4):
        time.sleep(2.0)                  # deliberately: paths alike two rounds apart are settled ones
        current = _as_paths(topo)
        if current == previous:
            print(f"AS paths of {topo.name} ({len(topo.servers)} servers, {topo.fabric.isolation}): "
                  + ", ".join(f"{s.split('.host')[0]}->{d.split('.host')[0]} {'-'.join(map(str, p))}"
                              for (s, d), p in sorted(current.items())))
            return current
        previous = current
    pytest.fail(f"the AS paths of {topo.name} keep changing")


def valley_free(topo, path: AsPath) -> bool:
    """Up (customer to provider)*, at most one peer link, then down (provider to customer)*."""
    def step(x: int, y: int) -> Optional[str]:
        kinds = set()
        for link in topo.links:
            if {link.a.asn, link.b.asn} != {x, y}:
                continue
            flipped = {"provider": "customer", "customer": "provider"}.get(link.rel, "peer")
            rel = link.rel if link.a.asn == x else flipped
            kinds.add({"peer": "peer", "provider": "down", "customer": "up"}[rel])   # x's relationship to y
        return kinds.pop() if len(kinds) == 1 else None
    phase = "up"
    for x, y in zip(path, path[1:]):
        kind = step(x, y)
        if kind is None:
            return False
        if kind == "up" and phase != "up":
            return False
        if kind == "peer":
            if phase != "up":
                return False
            phase = "down"
        if kind == "down":
            phase = "down"
    return True


# ---- the tests ------------------------------------------------------------------------------------

def test_as_paths_are_valley_free_on_one_server(one_server):
    topo = one_server.topo
    paths = one_server.as_paths()
    hs = hosts(topo)
    expected_pairs = sum(1 for a in hs for b in hs if hs[a][0] != hs[b][0])
    assert len(paths) == expected_pairs
    for (src, dst), path in paths.items():
        assert path[0] == hs[src][0] and path[-1] == hs[dst][0], (src, dst, path)
        assert valley_free(topo, path), (src, dst, path)
    # a few paths the policy dictates (demo.yaml): peers' customers are reached through the peer,
    # a peer's peer is never transit, multi-homed AS5 takes the shorter of its two providers
    assert paths[("3.BERN.host", "4.LYON.host")] == (3, 4)               # direct peering beats the provider
    assert paths[("1.ZURI.host", "4.LYON.host")] == (1, 2, 4)
    assert paths[("3.BERN.host", "5.ROMA.host")] == (3, 1, 5)
    assert paths[("5.ROMA.host", "4.LYON.host")] == (5, 2, 4)
    assert paths[("4.LYON.host", "5.ROMA.host")] == (4, 2, 5)


def test_distributed_lab_has_the_same_as_paths_as_one_server(one_server, distributed):
    reference = one_server.as_paths()
    paths = distributed.as_paths()
    differ = {pair: (reference.get(pair), paths.get(pair)) for pair in set(reference) | set(paths)
              if reference.get(pair) != paths.get(pair)}
    assert not differ, f"AS paths differ (one server, distributed {distributed.topo.fabric.isolation}): {differ}"
