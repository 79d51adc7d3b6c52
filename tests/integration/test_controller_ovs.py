"""The controller against real Open vSwitch: two emulated servers (namespaces with their own OvS,
joined by a GRE underlay), a remote bridge on each, and plain router namespaces on the links.

No FRR and no provisioning here: this checks the controller's own promises on a real datapath
(isolation, proxy ARP, full-size frames, resync without flush, fail-secure, carrier loss on
operator failure and on BFD loss). Needs root; cleans up even when a test fails.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from minet_sdn.lab import system
from minet_sdn.topology import names
from ovs_rig import running_rig, sh

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("ovs-vswitchd"), reason="needs Open vSwitch")]


@pytest.fixture(params=["key", "tos"])
def rig(request, tmp_path):
    with running_rig(tmp_path, request.param) as r:
        yield r


def test_traffic_crosses_isolated_with_proxy_arp_and_full_size_frames(rig):
    t = rig.topo
    l1, l2 = t.link(1), t.link(2)
    # ARP is answered in the datapath on both sides; IPv4 and IPv6 (ND crosses) both work
    assert rig.ping("1.A", l1.b.ip) == 3
    assert rig.ping("2.C", l2.a.ip) == 3
    assert rig.ping("1.A", l1.b.ip6, v6=True) == 3
    # a full 1500-byte IP packet crosses the tunnel (underlay 9000)
    assert rig.ping("1.A", l1.b.ip, count=2, size=1472, df=True) == 2
    # traffic of link 1 never shows up on link 2's ports, while it does on its own
    own = rig.capture("VM2", 1, f"host {l1.a.ip} or host {l1.a.ip6}")
    other = [rig.capture(s, 2, f"host {l1.a.ip} or host {l1.b.ip} or host {l1.a.ip6} or host {l1.b.ip6}")
             for s in ("VM1", "VM2")]
    assert rig.ping("1.A", l1.b.ip, count=20, interval="0.05") == 20
    assert rig.ping("1.A", l1.b.ip6, count=5, interval="0.05", v6=True) == 5
    assert own() >= 25
    assert [stop() for stop in other] == [0, 0]
    # a router forging the other link's address gets nothing across
    assert rig.ping("1.A", l2.b.ip, count=2) == 0
    # no packet-in in steady state
    assert rig.metric("packet_in") == 0


def test_restarted_controller_resyncs_without_flushing_and_traffic_never_stops(rig):
    flows_before = rig.flows("VM1", "VM2")
    rig.stop_controller()
    # fail_mode=secure: the flows stay and forward while the controller is away
    assert rig.ping("1.A", rig.topo.link(1).b.ip, count=30, interval="0.1") == 30
    rig.start_controller()
    wait_until(lambda: rig.rest("GET", "/v1/switches")["switches"][0]["synced"]
               and all(s["synced"] for s in rig.rest("GET", "/v1/switches")["switches"]), 20, interval=0.1,
               what="resync")
    assert rig.metric("flow_add") == 0 and rig.metric("flow_delete") == 0
    durations = lambda lines: [re.sub(r"duration=[\d.]+s, |n_packets=\d+, n_bytes=\d+, ", "", l) for l in lines]  # noqa: E731
    assert sorted(durations(rig.flows("VM1", "VM2"))) == sorted(durations(flows_before))


def test_operator_failure_drops_carrier_on_both_routers_and_restore_brings_it_back(rig):
    out = subprocess.run(system.nsenter_argv(names.mgmt_ns(rig.topo), [
        sys.executable, "-m", "minet_sdn.cli.main", "link", "fail", rig.info.effective_topology, "1"]),
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: not rig.carrier("1.A", 1) and not rig.carrier("2.C", 1), 2, interval=0.1,
               what="carrier loss on both routers")
    assert rig.carrier("1.B", 2) and rig.carrier("2.C", 2)           # the other link is untouched
    assert rig.rest("GET", "/v1/links/1")["state"] == "failed"
    rig.rest("POST", "/v1/links/1/restore")
    wait_until(lambda: rig.carrier("1.A", 1) and rig.carrier("2.C", 1), 3, interval=0.1, what="carrier back")
    assert rig.ping("1.A", rig.topo.link(1).b.ip) == 3


def test_router_interface_down_is_pushed_to_the_far_router(rig):
    sh("ip", "-n", rig.routers["1.B"], "link", "set", "ext2", "down")
    wait_until(lambda: not rig.carrier("2.C", 2), 2, interval=0.1, what="the far router to lose carrier")
    assert rig.carrier("2.C", 1)
    sh("ip", "-n", rig.routers["1.B"], "link", "set", "ext2", "up")
    wait_until(lambda: rig.carrier("2.C", 2), 3, interval=0.1, what="the far router to get carrier back")


def test_underlay_cut_is_seen_by_bfd_and_every_link_of_the_pair_goes_down_on_both_sides(rig):
    t = rig.topo
    ul = names.underlay_peer_ifname(t, "VM2")
    sh("ip", "-n", names.underlay_ns(t), "link", "set", ul, "down")
    try:
        wait_until(lambda: not any(rig.carrier(r, l) for r, l in (("1.A", 1), ("1.B", 2), ("2.C", 1), ("2.C", 2))),
                   3, interval=0.1, what="every router of the pair to lose carrier")
        assert {l["state"] for l in rig.rest("GET", "/v1/links")["links"]} == {"down"}
    finally:
        sh("ip", "-n", names.underlay_ns(t), "link", "set", ul, "up")
    wait_until(lambda: all(rig.carrier(r, l) for r, l in (("1.A", 1), ("1.B", 2), ("2.C", 1), ("2.C", 2))),
               10, interval=0.1, what="carrier back after the underlay returns")
