"""Issue 21 item 5 on real Open vSwitch: `ovs-ofctl del-flows` on a remote bridge black-holed its
links for good while /v1/switches said synced. Now the controller's audit notices the flushed table
and puts every flow back, without a reconnection, and the links carry traffic again.
Uses the two-server rig of ovs_rig.py, both isolation modes. Root; cleans up even on failure."""
import os
import re

import pytest

from minet_sdn.lab import paths
from ovs_rig import running_rig, sh

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/sbin/ovs-vswitchd")
                                 and not os.path.exists("/usr/bin/ovs-vswitchd"), reason="needs Open vSwitch")]


def canonical(lines):
    return sorted(re.sub(r"duration=[\d.]+s, |n_packets=\d+, n_bytes=\d+, |idle_age=\d+, |hard_age=\d+, ", "",
                         l).strip() for l in lines)


def connections(rig) -> int:
    """How many times the controller met a switch connecting (its log)."""
    with open(os.path.join(paths.state_dir(rig.topo), "controller.log")) as fh:
        return sum(1 for line in fh if "connected; reading its ports and flows" in line)


@pytest.mark.parametrize("mode", ["key", "tos"])
def test_a_flushed_table_is_put_back_without_a_reconnect(tmp_path, mode):
    with running_rig(tmp_path, mode) as rig:
        t = rig.topo
        bridge = t.bridge("VM1", "VM2")
        dpid = f"{bridge.dpid:016x}"
        full = canonical(rig.flows("VM1", "VM2"))
        links = [t.link(1), t.link(2)]
        assert all(rig.ping(l.a.router, l.b.ip) > 0 for l in links)
        met = connections(rig)

        mgmt = os.path.join(paths.server_dir(t, "VM1"), f"{bridge.name}.mgmt")
        sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", f"unix:{mgmt}")
        assert rig.flows("VM1", "VM2") == []
        # before: nothing noticed it, ever (links black-holed, switches: synced true)
        assert wait_until(lambda: canonical(rig.flows("VM1", "VM2")) == full, 30, interval=0.2)
        assert wait_until(lambda: all(rig.ping(l.a.router, l.b.ip, count=1) == 1 for l in links), 20, interval=0.5)
        assert connections(rig) == met                                # no reconnection
        view = {s["dpid"]: s for s in rig.rest("GET", "/v1/switches")["switches"]}
        assert view[dpid]["synced"] and view[dpid]["repairs"] >= 1
        assert rig.metric("repair") >= 1
