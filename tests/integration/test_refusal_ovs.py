"""A switch that refuses flows is asked again, on real Open vSwitch: table 0 of one remote bridge is
full (flow_limit, overflow_policy=refuse) when the controller starts, so OvS refuses the bundle
that would put back link 1's flows; the controller keeps reading that switch again with back-off,
and once the limit is lifted link 1's flows are back and it carries traffic, without a reconnection.
Uses the two-server rig of ovs_rig.py. Root."""
import os
import re

import pytest

from minet_sdn.lab import paths, system
from ovs_rig import running_rig, sh

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/sbin/ovs-vswitchd")
                                 and not os.path.exists("/usr/bin/ovs-vswitchd"), reason="needs Open vSwitch")]


def canonical(lines):
    return sorted(re.sub(r"duration=[\d.]+s, |n_packets=\d+, n_bytes=\d+, |idle_age=\d+, ", "", l).strip()
                  for l in lines)


def test_a_table_that_refused_flows_is_completed_once_it_can_take_them(tmp_path):
    with running_rig(tmp_path, "key") as rig:
        t = rig.topo
        bridge = t.bridge("VM1", "VM2")
        dpid = f"{bridge.dpid:016x}"
        link1 = t.link(1)
        full = canonical(rig.flows("VM1", "VM2"))
        assert rig.ping("1.A", link1.b.ip) > 0

        rig.stop_controller()
        mgmt = os.path.join(paths.server_dir(t, "VM1"), f"{bridge.name}.mgmt")
        sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", f"unix:{mgmt}", f"cookie={(0x6D6E << 48) | 1:#x}/-1")
        left = canonical(rig.flows("VM1", "VM2"))
        assert len(left) == len(full) - 3
        system.ovs_vsctl(paths.server_dir(t, "VM1"), "--", "--id=@ft", "create", "Flow_Table",
                         f"flow_limit={len(left)}", "overflow_policy=refuse", "--", "set", "Bridge", bridge.name,
                         "flow_tables:0=@ft")

        rig.start_controller()

        def refusals():
            return {s["dpid"]: s["refusals"] for s in rig.rest("GET", "/v1/switches")["switches"]}
        # the push is refused, and asked again (a second refusal is a resync's push refused too)
        assert wait_until(lambda: refusals()[dpid] >= 2, 30, interval=0.2), refusals()
        assert canonical(rig.flows("VM1", "VM2")) == left and rig.ping("1.A", link1.b.ip, count=2) == 0
        assert all(n == 0 for d, n in refusals().items() if d != dpid)

        system.ovs_vsctl(paths.server_dir(t, "VM1"), "clear", "Bridge", bridge.name, "flow_tables")
        # the next resync (back-off: at most a minute) finds room: every flow back, link 1 carries traffic
        assert wait_until(lambda: canonical(rig.flows("VM1", "VM2")) == full, 75, interval=0.5)
        assert wait_until(lambda: rig.ping("1.A", link1.b.ip, count=1) == 1, 20, interval=0.5)
        assert rig.rest("GET", "/healthz")["connected"] == len(t.bridges)
        assert rig.metric("resync") >= 2
