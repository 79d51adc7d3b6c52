"""Breaking the fabric on purpose, on real Open vSwitch: what must hold afterwards.

  * ovs-vswitchd of one emulated server restarted: its bridges come back empty (OvS keeps no
    flows across a restart), reconnect, and the controller's resync restores every flow;
  * a router's link flapped 1,000 times: afterwards the tables are exactly what they were (no
    stale flow), the same ports and processes exist (nothing leaked), carrier and traffic are back,
    and the controller's memory has not grown beyond a bound.

Uses the two-server rig of ovs_rig.py (key isolation only, to keep CI short). Root.
"""
import os
import re
import subprocess
import time

import pytest

from minet_sdn import host
from minet_sdn.lab import paths, system
from minet_sdn.lab.state import ProcessRecord
from minet_sdn.topology import names
from ovs_rig import links_up, running_rig, sh

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not os.path.exists("/usr/sbin/ovs-vswitchd")
                                 and not os.path.exists("/usr/bin/ovs-vswitchd"), reason="needs Open vSwitch")]


@pytest.fixture
def rig(tmp_path):
    with running_rig(tmp_path, "key") as r:
        yield r


def canonical(lines):
    return sorted(re.sub(r"duration=[\d.]+s, |n_packets=\d+, n_bytes=\d+, |idle_age=\d+, ", "", l).strip()
                  for l in lines)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        return int(re.search(r"VmRSS:\s+(\d+)", fh.read()).group(1))


def test_restarted_vswitchd_gets_every_flow_back_by_resync(rig):
    t = rig.topo
    before = {s: canonical(rig.flows(s, p)) for s, p in (("VM1", "VM2"), ("VM2", "VM1"))}
    assert len(before["VM1"]) == 2 + 3 * 2
    d = paths.server_dir(t, "VM1")
    rec = rig.state.process("VM1/ovs-vswitchd")
    rec.stop()
    assert not rec.alive()
    started = time.monotonic()
    env = [f"{k}={v}" for k, v in host.ovs_env(d).items()]
    sh("ip", "netns", "exec", names.server_ns(t, "VM1"), "env", *env, "ovs-vswitchd", f"unix:{d}/db.sock",
       f"--pidfile={d}/ovs-vswitchd.pid", "--detach", f"--log-file={d}/ovs-vswitchd.log",
       "--unixctl", f"{d}/ovs-vswitchd.ctl")
    pid = system.read_pidfile(f"{d}/ovs-vswitchd.pid")
    rig.state.add_process(ProcessRecord.of("VM1/ovs-vswitchd", pid, f"{d}/ovs-vswitchd.pid"))
    rig.state.save()

    def restored():
        try:
            return canonical(rig.flows("VM1", "VM2")) == before["VM1"]
        except AssertionError:           # the management socket is not back yet
            return False
    wait_until(restored, 30, interval=0.1, what="the controller to restore VM1's flows")
    took = time.monotonic() - started
    assert canonical(rig.flows("VM2", "VM1")) == before["VM2"]        # the other server untouched
    # veths re-attached, BFD up again, links up, traffic crosses
    wait_until(lambda: links_up(rig), 20, interval=0.1, what="links up")
    wait_until(lambda: rig.ping("1.A", t.link(1).b.ip, count=1) == 1, 20, interval=0.1,
               what="traffic across link 1")
    assert rig.ping("1.B", t.link(2).b.ip) == 3
    print(f"\nvswitchd restart: flows restored {took:.2f} s after the restart command")


def test_a_link_flapped_1000_times_leaves_no_stale_flow_no_leak_and_bounded_memory(rig):
    t = rig.topo
    flows = {s: canonical(rig.flows(s, p)) for s, p in (("VM1", "VM2"), ("VM2", "VM1"))}
    ports = {s: system.ovs_vsctl(paths.server_dir(t, s), "list-ports", t.bridge(s, p).name)
             for s, p in (("VM1", "VM2"), ("VM2", "VM1"))}
    procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and _in_lab(rig, int(p)))
    ctl = rig.controller.pid
    # warm-up flaps (first-time allocations), then the measured 1,000
    _flap(rig, 20)
    wait_until(lambda: rig.carrier("2.C", 1), 10, interval=0.1, what="carrier back after the warm-up")
    rss0 = rss_kib(ctl)
    _flap(rig, 1000)
    wait_until(lambda: rig.carrier("1.A", 1) and rig.carrier("2.C", 1), 15, interval=0.1,
               what="carrier back on both routers")
    wait_until(lambda: rig.rest("GET", "/v1/links/1")["state"] == "up", 15, interval=0.1, what="link 1 up")
    assert rig.ping("1.A", t.link(1).b.ip) == 3
    rss1 = rss_kib(ctl)
    assert {s: canonical(rig.flows(s, p)) for s, p in (("VM1", "VM2"), ("VM2", "VM1"))} == flows
    assert {s: system.ovs_vsctl(paths.server_dir(t, s), "list-ports", t.bridge(s, p).name)
            for s, p in (("VM1", "VM2"), ("VM2", "VM1"))} == ports
    now = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and _in_lab(rig, int(p)))
    assert now == procs, "processes appeared or vanished in the lab's namespaces"
    assert rig.rest("GET", "/healthz")["connected"] == 2
    grown = rss1 - rss0
    print(f"\n1,000 flaps: controller RSS {rss0} KiB -> {rss1} KiB ({grown:+d} KiB)")
    assert grown < 16 * 1024, f"controller memory grew by {grown} KiB over 1,000 flaps"


def _flap(rig, n):
    """Router 1.A's side of link 1 down and up `n` times, as fast as ip can (one batch)."""
    batch = "".join("link set ext1 down\nlink set ext1 up\n" for _ in range(n))
    subprocess.run(["ip", "-n", rig.routers["1.A"], "-batch", "-"], input=batch, text=True, check=True,
                   capture_output=True, timeout=120)


def _in_lab(rig, pid):
    """A live process in one of this rig's namespaces (server, router or management)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        net = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return net in _lab_net_ids(rig)


def _lab_net_ids(rig):
    ids = set()
    for ns in os.listdir("/run/netns"):
        if ns.startswith(f"{rig.topo.tag}-"):
            try:
                st = os.stat(f"/run/netns/{ns}")
            except OSError:
                continue
            ids.add(f"net:[{st.st_ino}]")
    return ids
