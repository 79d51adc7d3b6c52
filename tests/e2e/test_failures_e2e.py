"""End to end: failures on a running lab of topologies/demo.yaml (key and tos isolation).

What test_lab_e2e.py does not check: isolation seen on the real bridge ports, full-size packets
across every server pair (IPv4 from host to host, IPv6 on a link), `minet link fail` through the
CLI with carrier loss timed on both routers and traffic rerouted, a controller killed while
hosts ping (no loss, resync without flushing), an operator failure that survives a controller
restart, and a server's underlay cut (BFD takes every link of its pairs down on both sides, and
brings them back).

One lab per isolation mode is shared by every test of the module; each disruptive test restores
what it broke (in `finally`) and waits until every link is up and every BGP session established
again. The lab is removed even when a test fails. Needs root, Open vSwitch, FRR, sshd, tcpdump,
traceroute.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from minet_sdn import host
from minet_sdn.lab import controller, convergence, observe, paths, places, quiet
from minet_sdn.lab.lab import Lab as MinetLab   # the test's own Lab below is a helper
from minet_sdn.lab import state as lab_state
from e2e_support import demo_variant, isolation, require_lab, traceroute_hops, wait_all
from tests.polling import wait_until
from minet_sdn.topology import load_topology, names
from minet_sdn.topology.addressing import topology_addressing

pytestmark = pytest.mark.root

require_lab("ovs-ofctl", "vtysh", "ping", "tcpdump", "traceroute")

SETTLE_S = 90.0            # time allowed to get back to "every link up, every session established"


# ---- the lab ----------------------------------------------------------------------------------

class Lab:
    def __init__(self, path: str):
        self.path = path
        self.topo = load_topology(path)
        addressing = topology_addressing(self.topo)
        self.hosts = {f"{asn}.{name}.host": r.host_ip for asn, a in addressing.items()
                      for name, r in a.routers.items() if self.topo.ases[asn].configure}

    # -- nodes and commands --
    def ns(self, node: str) -> str:
        return places.resolve_node(self.topo, node)[0]

    def run(self, node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(node), *argv], capture_output=True,
                              text=True, timeout=timeout)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """The `minet` command line, as a user runs it (from the root namespace)."""
        return subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", *args], capture_output=True,
                              text=True, timeout=60)

    def rest(self, method: str, path: str):
        code, body = controller.rest_call(self.path, method, path)
        assert code == 200, (method, path, code, body)
        return body

    # -- observations --
    def carrier(self, node: str, ifname: str) -> bool:
        return observe.carrier(self.ns(node), ifname)

    def session(self, router: str, peer_ip: str) -> str:
        """BGP state of `router`'s session with `peer_ip` ('?' when vtysh does not answer)."""
        return observe.bgp_state(self.topo, router, peer_ip)

    def ping(self, node: str, dst: str, count: int = 3, size: int = 56, df: bool = False, v6: bool = False,
             interval: str = "0.2") -> Tuple[int, int]:
        argv = ["ping", "-6" if v6 else "-4", "-n", "-c", str(count), "-i", interval, "-W", "1", "-s", str(size)]
        if df:
            argv += ["-M", "do"]
        return _ping_counts(self.run(node, *argv, dst).stdout)

    def traceroute(self, node: str, dst: str) -> List[Optional[str]]:
        out = self.run(node, "traceroute", "-n", "-I", "-q", "1", "-w", "1", "-m", "10", dst).stdout
        return traceroute_hops(out)

    def flows(self, server: str, bridge: str) -> List[str]:
        mgmt = os.path.join(paths.server_dir(self.topo, server), f"{bridge}.mgmt")
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", f"unix:{mgmt}"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return [line.strip() for line in out.splitlines() if "cookie=" in line]

    def metric(self, kind: str) -> int:
        m = re.search(r'minet_controller_messages_total\{kind="%s"\} (\d+)' % kind, self.rest("GET", "/metrics"))
        return int(m.group(1)) if m else 0

    def settled(self) -> Tuple[bool, str]:
        try:
            links = self.rest("GET", "/v1/links")["links"]
        except Exception as exc:               # controller restarting
            return False, f"REST: {exc}"
        bad = [l["id"] for l in links if l["state"] != "up"]
        if bad:
            return False, f"links not up: {bad}"
        ok, reports = convergence.wait_bgp(self.topo, timeout=0)
        if not ok:
            return False, f"BGP not converged on {[r['router'] for r in reports if not convergence.bgp_converged(r)]}"
        return True, ""

    def settle(self, timeout: float = SETTLE_S) -> None:
        """Wait until every link is up and every BGP session is established again."""
        last = [""]

        def settled() -> bool:
            ok, last[0] = self.settled()
            return ok
        assert wait_until(settled, timeout, interval=0.5), f"the lab did not settle within {timeout:g} s: {last[0]}"


@pytest.fixture(scope="module", params=["key", "tos"])
def lab(request, tmp_path_factory):
    path = demo_variant(tmp_path_factory.mktemp(f"failures-{request.param}"), f"f{request.param[0]}",
                        f"demo-{request.param}.yaml", isolation(request.param))
    try:
        MinetLab(path, progress=lambda m: print(m, flush=True)).up()
        lab = Lab(path)
        _wait_reachable(lab)
        yield lab
    finally:
        MinetLab(path, progress=quiet).remove()


@pytest.fixture
def settled(lab):
    """The lab as every test expects to find it, and leaves it."""
    lab.settle()
    yield lab
    lab.settle()


def _wait_reachable(lab: Lab, timeout: float = 30) -> None:
    """Sessions are up when lab_up returns; wait until the routes let every host reach every other."""
    wait_all([(a, b) for a in lab.hosts for b in lab.hosts if a != b],
             lambda p: lab.ping(p[0], lab.hosts[p[1]], count=1)[1] == 1, timeout,
             "every host pair to reach each other")


# ---- parsing ----------------------------------------------------------------------------------

def _ping_counts(out: str) -> Tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _dead(rec) -> bool:
    """The recorded process is gone (reaped if it was our child: lab_up started it from this process)."""
    host.reap(rec.pid)
    return not rec.alive()


# ---- helpers that run alongside a test ------------------------------------------------------------

class CarrierWatch(observe.CarrierWatch):
    """`ip monitor link` in router namespaces (minet_sdn/lab/observe.py)."""

    def __init__(self, lab: Lab, watched: Sequence[Tuple[str, str]]):
        self.lab = lab
        super().__init__(lab.ns, watched)

class Capture:
    """tcpdump on one port of a remote bridge (in the server's namespace); stop() -> packets matched."""

    def __init__(self, lab: Lab, server: str, ifname: str, bpf: str):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".tcpdump")
        self.where = f"{server}:{ifname}"
        self.proc = subprocess.Popen(["ip", "netns", "exec", names.server_ns(lab.topo, server), "tcpdump", "-n",
                                      "-p", "-i", ifname, bpf], stdout=subprocess.DEVNULL, stderr=self.log)
        wait_until(lambda: "listening on" in open(self.log.name).read() or self.proc.poll() is not None,
                   10, what=f"tcpdump on {self.where}")
        assert self.proc.poll() is None, open(self.log.name).read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        text = open(self.log.name).read()
        self.log.close()
        m = re.search(r"(\d+) packets? captured", text)
        assert m, f"tcpdump on {self.where}: {text}"
        return int(m.group(1))


class Pinger:
    """A long `ping -i 0.05` between two nodes; result() -> (transmitted, received)."""

    def __init__(self, lab: Lab, node: str, dst: str, count: int, interval: float = 0.05):
        self.what = f"{node} -> {dst}"
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(node), "ping", "-4", "-n", "-c", str(count),
                                      "-i", str(interval), "-W", "1", dst], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def result(self, timeout: float = 60) -> Tuple[int, int]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)          # our own ping: prints its statistics
            out, _ = self.proc.communicate(timeout=10)
        return _ping_counts(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# ---- the tests ----------------------------------------------------------------------------------

def test_remote_links_are_isolated_on_the_bridge_ports(settled):
    lab = settled
    topo = lab.topo
    l1 = topo.link(1)
    # frames of link 1: its MACs and its addresses (v4 and v6); nothing of them may reach another port
    mine = (f"ether host {l1.a.mac} or ether host {l1.b.mac} or host {l1.a.ip} or host {l1.b.ip} "
            f"or host {l1.a.ip6} or host {l1.b.ip6}")
    own = {s: Capture(lab, s, topo.link_port_name(1), mine) for s in l1.servers()}
    others = [Capture(lab, s, topo.link_port_name(link.id), mine)
              for link in topo.remote_links if link.id != 1 for s in link.servers()]
    try:
        # traffic between link 1's own addresses (stays on the link: connected on both ends) ...
        assert lab.ping(l1.a.router, l1.b.ip, count=20, interval="0.05") == (20, 20)
        assert lab.ping(l1.b.router, l1.a.ip6, count=10, interval="0.05", v6=True) == (10, 10)
        # ... while hosts ping each other across the AS1-AS2 links and the other remote links
        busy = [Pinger(lab, "1.ZURI.host", lab.hosts["2.PARI.host"], 40),
                Pinger(lab, "2.PARI.host", lab.hosts["1.ZURI.host"], 40),
                Pinger(lab, "5.ROMA.host", lab.hosts["1.ZURI.host"], 40),
                Pinger(lab, "4.LYON.host", lab.hosts["3.BERN.host"], 40)]
        results = [p.result() for p in busy]
        assert all(r == (40, 40) for r in results), results
    finally:
        counts_own = {s: c.stop() for s, c in own.items()}
        counts_others = {c.where: c.stop() for c in others}
    assert all(n >= 60 for n in counts_own.values()), counts_own      # 2 x 20 + 2 x 10 at least
    assert counts_others == {w: 0 for w in counts_others}, "link 1's frames leaked to other links"


def test_full_size_packets_cross_every_server_pair(settled):
    lab = settled
    # 1500-byte IPv4 packets host to host (DF set): VM1-VM2 (AS1-AS2 links), VM3-VM1 (link 6),
    # VM3-VM2 (link 7), both directions
    pairs = [("1.ZURI.host", "2.PARI.host"), ("2.PARI.host", "1.ZURI.host"),
             ("5.ROMA.host", "1.ZURI.host"), ("1.ZURI.host", "5.ROMA.host"),
             ("5.ROMA.host", "2.PARI.host"), ("2.PARI.host", "5.ROMA.host")]
    for src, dst in pairs:
        assert lab.ping(src, lab.hosts[dst], count=3, size=1472, df=True) == (3, 3), (src, dst)
    # and a 1500-byte IPv6 packet on a remote link itself (link 6, VM1-VM3)
    l6 = lab.topo.link(6)
    assert lab.ping(l6.a.router, l6.b.ip6, count=3, size=1452, df=True, v6=True) == (3, 3)


def test_cli_link_fail_drops_carrier_on_both_routers_and_reroutes(settled):
    lab = settled
    topo = lab.topo
    l1 = topo.link(1)
    a, b = (l1.a.router, l1.a.ifname), (l1.b.router, l1.b.ifname)
    siblings = [(topo.link(2).a.router, topo.link(2).a.ifname), (topo.link(3).b.router, topo.link(3).b.ifname)]
    src, dst = "1.ZURI.host", "2.PARI.host"
    assert lab.session(l1.a.router, l1.b.ip) == "Established"
    watch = CarrierWatch(lab, [a, b, *siblings])
    restored = False
    try:
        assert all(watch.initial.values()), watch.initial
        t0 = time.monotonic()
        out = lab.cli("link", "fail", lab.path, "1")
        t1 = time.monotonic()
        assert out.returncode == 0, out.stderr
        assert "failed" in out.stdout
        # both routers lose carrier, at once, at the latest 1 s after the command returned
        wait_until(lambda: watch.first(a, False) and watch.first(b, False), 3.0,
                   what="carrier loss on both routers of link 1")
        ta, tb = watch.first(a, False), watch.first(b, False)
        print(f"link fail: command {t1 - t0:.3f} s; carrier lost {ta - t0:.3f} s ({a[0]}) and "
              f"{tb - t0:.3f} s ({b[0]}) after it started")
        assert max(ta, tb) - t1 <= 1.0 and abs(ta - tb) <= 1.0
        assert not lab.carrier(*a) and not lab.carrier(*b)
        assert lab.rest("GET", "/v1/links/1")["state"] == "failed"
        # the BGP session over link 1 drops on both sides within seconds
        wait_until(lambda: lab.session(l1.a.router, l1.b.ip) != "Established"
                   and lab.session(l1.b.router, l1.a.ip) != "Established", 5, what="BGP over link 1 to drop")
        print(f"link fail: BGP session down on both ends {time.monotonic() - t0:.2f} s after the command started")
        # traffic AS1 <-> AS2 takes another path: it still flows, and never through link 1's addresses
        for s, d in ((src, dst), (dst, src)):
            assert lab.ping(s, lab.hosts[d], count=5, interval="0.1")[1] == 5, (s, d)
            hops = wait_until(lambda: (lambda h: h if h and h[-1] == lab.hosts[d] and None not in h else None)(
                lab.traceroute(s, lab.hosts[d])), 10, interval=1, what=f"a complete traceroute {s} -> {d}")
            assert not {l1.a.ip, l1.b.ip} & set(hops), hops
        # the parallel links were not touched
        assert not any(watch.lost(s) for s in siblings)
        # restore: carrier back on both, the session Established again within 15 s
        t2 = time.monotonic()
        out = lab.cli("link", "restore", lab.path, "1")
        restored = out.returncode == 0
        assert restored, out.stderr
        wait_until(lambda: lab.carrier(*a) and lab.carrier(*b), 3, what="carrier back on both routers")
        wait_until(lambda: lab.session(l1.a.router, l1.b.ip) == "Established"
                   and lab.session(l1.b.router, l1.a.ip) == "Established", 15, interval=0.2,
                   what="BGP over link 1 again")
        print(f"link restore: BGP Established on both ends {time.monotonic() - t2:.2f} s after the command started")
        assert lab.rest("GET", "/v1/links/1")["state"] == "up"
    finally:
        watch.stop()
        if not restored:
            lab.rest("POST", "/v1/links/1/restore")


def _flow_table(lab: Lab) -> Dict[Tuple[str, str], Dict[str, Tuple[float, int]]]:
    """{(server, bridge): {flow without counters: (duration, n_packets)}} of every remote bridge."""
    out = {}
    for b in lab.topo.bridges.values():
        table = {}
        for line in lab.flows(b.server, b.name):
            duration = float(re.search(r"duration=([\d.]+)s", line).group(1))
            packets = int(re.search(r"n_packets=(\d+)", line).group(1))
            key = re.sub(r"duration=[\d.]+s, |n_packets=\d+, |n_bytes=\d+, |idle_age=\d+, |hard_age=\d+, ", "", line)
            assert key not in table, key
            table[key] = (duration, packets)
        out[(b.server, b.name)] = table
    return out


def test_controller_killed_no_loss_and_resync_without_flush(settled):
    lab = settled
    topo = lab.topo
    # hosts pinging each other across every server pair
    pairs = [("1.ZURI.host", "2.PARI.host"), ("5.ROMA.host", "1.GENE.host"), ("4.LYON.host", "5.ROMA.host"),
             ("3.BERN.host", "4.LYON.host")]
    state = lab_state.LabState.load(topo)
    rec = state.process("controller")
    assert rec.alive()
    before = _flow_table(lab)
    t_before = time.monotonic()
    pingers = [Pinger(lab, s, lab.hosts[d], count=100) for s, d in pairs]          # 5 s each
    try:
        time.sleep(1.0)                  # deliberately: the pings run a while before the kill, too
        os.kill(rec.pid, signal.SIGKILL)
        wait_until(lambda: _dead(rec), 5, what="the controller to die")
        down = [p.result() for p in pingers]
    finally:
        for p in pingers:
            p.kill()
    assert all(tx == 100 and rx == tx for tx, rx in down), f"loss while the controller was down: {down}"
    assert not MinetLab(lab.path).status(json=True)["mgmt"]["controller"]["alive"]
    # restart it the documented way (`lab up` again restarts a dead controller), pinging meanwhile
    pingers = [Pinger(lab, s, lab.hosts[d], count=300) for s, d in pairs]          # 15 s each
    try:
        summary = MinetLab(lab.path, progress=lambda m: print(m, flush=True)).up()
        assert summary["already_up"] is True
        new = lab_state.LabState.load(topo).process("controller")
        assert new.pid != rec.pid and new.alive()
        wait_until(lambda: (lambda s: all(x["connected"] and x["synced"] for x in s))(
            lab.rest("GET", "/v1/switches")["switches"]), 20, interval=0.5,
            what="every bridge to reconnect and resync")
        during = [p.result() for p in pingers]
    finally:
        for p in pingers:
            p.kill()
    assert all(tx == 300 and rx == tx for tx, rx in during), f"loss while the controller restarted: {during}"
    after = _flow_table(lab)
    elapsed = time.monotonic() - t_before
    # the same flows, never re-added (durations kept running) and counters only grew
    assert {k: set(v) for k, v in after.items()} == {k: set(v) for k, v in before.items()}
    for bridge, table in before.items():
        for flow, (duration, packets) in table.items():
            d2, p2 = after[bridge][flow]
            assert d2 >= duration + elapsed - 1.0, (bridge, flow, duration, d2)
            assert p2 >= packets, (bridge, flow, packets, p2)
    packets = lambda tables: sum(p for t in tables.values() for _, p in t.values())   # noqa: E731
    assert packets(after) > packets(before)
    # and the new controller sent nothing to change: no flow added or deleted, no port touched
    assert lab.metric("sync") >= len(topo.bridges)
    assert (lab.metric("flow_add"), lab.metric("flow_delete"), lab.metric("port_mod")) == (0, 0, 0)


def test_underlay_cut_takes_the_server_pairs_down_on_both_sides(settled):
    lab = settled
    topo = lab.topo
    cut = "VM3"
    hit = [l for l in topo.remote_links if cut in l.servers()]            # pairs (VM1,VM3), (VM2,VM3)
    spared = [l for l in topo.remote_links if cut not in l.servers()]     # pair (VM1,VM2)
    assert {l.id for l in hit} == {6, 7, 9} and {l.id for l in spared} == {1, 2, 3, 8}
    ends = lambda links: [(e.router, e.ifname) for l in links for e in (l.a, l.b)]   # noqa: E731
    watch = CarrierWatch(lab, ends(hit) + ends(spared))
    ul_ns, veth = names.underlay_ns(topo), names.underlay_peer_ifname(topo, cut)
    cut_done = False
    try:
        assert all(watch.initial.values()), watch.initial
        t0 = time.monotonic()
        subprocess.run(["ip", "-n", ul_ns, "link", "set", veth, "down"], check=True, timeout=10)
        cut_done = True
        wait_until(lambda: all(watch.first(e, False) for e in ends(hit)), 2.0,
                   what="every router of the pairs (VM1,VM3) and (VM2,VM3) to lose carrier")
        lost = {e: round(watch.first(e, False) - t0, 3) for e in ends(hit)}
        print(f"underlay cut of {cut}: carrier lost after {lost}")
        assert all(not lab.carrier(*e) for e in ends(hit))
        states = {l["id"]: l["state"] for l in lab.rest("GET", "/v1/links")["links"]}
        assert {states[l.id] for l in hit} == {"down"} and {states[l.id] for l in spared} == {"up"}
        time.sleep(1.0)                  # deliberately: the spared pair stays up, not just for a moment
        assert not any(watch.lost(e) for e in ends(spared)), {e: watch.events[e] for e in ends(spared)}
        assert all(lab.carrier(*e) for e in ends(spared))
        t1 = time.monotonic()
        subprocess.run(["ip", "-n", ul_ns, "link", "set", veth, "up"], check=True, timeout=10)
        cut_done = False
        wait_until(lambda: all(lab.carrier(*e) for e in ends(hit)), 10, what="carrier back on every router")
        print(f"underlay restored: carrier back after {time.monotonic() - t1:.2f} s")
        ok, reports = convergence.wait_bgp(topo, timeout=60)
        assert ok, [r for r in reports if not convergence.bgp_converged(r)]
        print(f"underlay restored: BGP converged after {time.monotonic() - t1:.2f} s")
    finally:
        watch.stop()
        if cut_done:
            subprocess.run(["ip", "-n", ul_ns, "link", "set", veth, "up"], timeout=10)


def _kill_and_restart_controller(lab: Lab) -> None:
    """SIGKILL the lab's controller (its recorded pid), restart it with `lab up`, wait for the resync."""
    rec = lab_state.LabState.load(lab.topo).process("controller")
    os.kill(rec.pid, signal.SIGKILL)
    wait_until(lambda: _dead(rec), 5, what="the controller to die")
    assert MinetLab(lab.path, progress=lambda m: None).up()["already_up"] is True
    wait_until(lambda: (lambda s: all(x["connected"] and x["synced"] for x in s))(
        lab.rest("GET", "/v1/switches")["switches"]), 20, interval=0.5, what="every bridge to reconnect and resync")


def test_operator_failure_survives_a_controller_restart(settled):
    lab = settled
    l1 = lab.topo.link(1)
    a, b = (l1.a.router, l1.a.ifname), (l1.b.router, l1.b.ifname)
    try:
        out = lab.cli("link", "fail", lab.path, "1")
        assert out.returncode == 0, out.stderr
        wait_until(lambda: not lab.carrier(*a) and not lab.carrier(*b), 3, what="carrier loss on both routers")
        _kill_and_restart_controller(lab)
        time.sleep(2.0)                  # deliberately: a release (PortMod) and carrier back would show by now
        states = (lab.rest("GET", "/v1/links/1")["state"], lab.carrier(*a), lab.carrier(*b))
        assert states == ("failed", False, False), \
            f"after a controller restart link 1 is {states[0]!r}, carrier {states[1:]} (was failed by the operator)"
    finally:
        lab.rest("POST", "/v1/links/1/restore")
