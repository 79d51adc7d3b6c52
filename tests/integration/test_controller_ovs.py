"""The controller against real Open vSwitch: two emulated servers (namespaces with their own OvS,
joined by a GRE underlay), a remote bridge on each, and plain router namespaces on the links.

No FRR and no provisioning here: this checks the controller's own promises on a real datapath
(isolation, proxy ARP, full-size frames, resync without flush, fail-secure, carrier loss on
operator failure and on BFD loss). Needs root; cleans up even when a test fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from minet_sdn.lab import paths, servers, system
from minet_sdn.lab.state import ProcessRecord
from minet_sdn.topology import names

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("ovs-vswitchd"), reason="needs Open vSwitch")]

TOPO = """
name: {name}
fabric: {{isolation: {mode}, underlay_mtu: 9000, bfd_interval_ms: 100}}
servers:
  VM1: {{underlay_ip: 192.0.2.1}}
  VM2: {{underlay_ip: 192.0.2.2}}
ases:
  1: {{server: VM1, routers: [A, B]}}
  2: {{server: VM2, routers: [C]}}
links:
  - {{a: 1.A, b: 2.C, rel: peer}}
  - {{a: 1.B, b: 2.C, rel: customer}}
"""


def sh(*argv, check=True, timeout=30):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Rig:
    def __init__(self, tmp_path, mode):
        from minet_sdn.topology import load_topology
        self.path = str(tmp_path / "topo.yaml")
        with open(self.path, "w") as fh:
            fh.write(TOPO.format(name=f"ct{mode[0]}{os.getpid() % 100000}", mode=mode))
        self.topo = load_topology(self.path)
        self.info = servers.build_servers(self.path)
        self.state = self.info.state
        self.eff = load_topology(self.info.effective_topology)
        self.controller = None
        self.routers = {}
        for link in self.topo.links:
            for end in (link.a, link.b):
                self._wire(link, end)
        self._bridges()

    # -- building: router namespaces on veths whose server end is a port of the remote bridge --
    def _wire(self, link, end):
        ns = f"{self.topo.tag}-r{end.router}"
        if ns not in self.routers.values():
            system.create_netns(ns)
            self.state.add_namespace(ns)
            self.state.save()
        self.routers[end.router] = ns
        server_ns = names.server_ns(self.topo, end.server)
        port = self.topo.link_port_name(link.id)
        system.ip_batch(server_ns, [f"link add {port} type veth peer name {end.ifname} netns {ns}",
                                    f"link set {port} up"])
        system.ip_batch(ns, [f"link set {end.ifname} address {end.mac}",
                             f"addr add {end.ip}/{link.prefixlen} dev {end.ifname}",
                             f"addr add {end.ip6}/{link.prefixlen6} dev {end.ifname} nodad",
                             f"link set {end.ifname} mtu {self.topo.fabric.link_mtu} up"])
        for where, ifname in ((server_ns, port), (ns, end.ifname)):
            sh("ip", "netns", "exec", where, "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off")

    def _bridges(self):
        """The remote bridges exactly as provisioning makes them (its plan's one transaction)."""
        from minet_sdn.provision.plan import build_plan
        for server in self.topo.servers:
            for bridge in build_plan(self.eff, server).bridges:
                system.ovs_vsctl(paths.server_dir(self.topo, server), *bridge.vsctl_args())

    # -- the controller, in the mgmt namespace ---------------------------------------------
    def start_controller(self):
        log = os.path.join(paths.state_dir(self.topo), "controller.log")
        argv = system.nsenter_argv(names.mgmt_ns(self.topo), [
            sys.executable, "-m", "minet_sdn.cli.main", "controller", "--topology",
            self.info.effective_topology, "--log-file", log,
            "--state", os.path.join(paths.state_dir(self.topo), "controller-state.json")])
        self.controller = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.state.add_process(ProcessRecord.of("test-controller", self.controller.pid))
        self.state.save()
        wait_for(lambda: self.rest_ok(), 20, "the controller's REST API")

    def stop_controller(self):
        self.controller.terminate()
        self.controller.wait(10)
        self.state.drop_process("test-controller")
        self.state.save()

    def rest(self, method, path):
        c = self.eff.controller
        code = (f"import urllib.request,sys;r=urllib.request.Request('http://{c.rest_host}:{c.rest_port}{path}',"
                f"method='{method}',data=b'' if '{method}'=='POST' else None,headers={{'X-Minet':'1'}});"
                f"sys.stdout.write(urllib.request.urlopen(r,timeout=10).read().decode())")
        out = sh(*system.nsenter_argv(names.mgmt_ns(self.topo), [sys.executable, "-c", code]))
        return out if path == "/metrics" else json.loads(out)

    def rest_ok(self):
        try:
            return self.rest("GET", "/healthz")["connected"] == len(self.topo.bridges)
        except AssertionError:
            return False

    def metric(self, kind):
        m = re.search(r'minet_controller_messages_total\{kind="%s"\} (\d+)' % kind, self.rest("GET", "/metrics"))
        return int(m.group(1)) if m else 0

    # -- observing ---------------------------------------------------------------------------
    def ofctl(self, server, peer, *args):
        b = self.topo.bridge(server, peer)
        mgmt = os.path.join(paths.server_dir(self.topo, server), f"{b.name}.mgmt")
        return sh("ovs-ofctl", "-O", "OpenFlow13", *args, f"unix:{mgmt}")

    def capture(self, server, link_id, bpf):
        """Start tcpdump on a link's bridge port; stop() returns how many packets matched `bpf`."""
        ns = names.server_ns(self.topo, server)
        log = tempfile.NamedTemporaryFile("w+", suffix=".tcpdump")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-n", "-p", "-i",
                                 self.topo.link_port_name(link_id), bpf],
                                stdout=subprocess.DEVNULL, stderr=log)
        wait_for(lambda: "listening on" in open(log.name).read(), 10, "tcpdump to start")

        def stop():
            time.sleep(0.3)
            proc.terminate()
            proc.wait(10)
            text = open(log.name).read()
            log.close()
            m = re.search(r"(\d+) packets? captured", text)
            assert m, text
            return int(m.group(1))
        return stop

    def flows(self, server, peer):
        return [l for l in self.ofctl(server, peer, "dump-flows").splitlines() if "cookie=" in l]

    def carrier(self, router, link_id):
        ns = self.routers[router]
        return "LOWER_UP" in sh("ip", "-n", ns, "link", "show", f"ext{link_id}")

    def ping(self, router, dst, count=3, size=56, v6=False, interval="0.2", df=False):
        argv = ["ip", "netns", "exec", self.routers[router], "ping", "-6" if v6 else "-4", "-c", str(count),
                "-i", interval, "-W", "1", "-s", str(size)]
        if df:
            argv += ["-M", "do"]
        proc = subprocess.run(argv + [dst], capture_output=True, text=True, timeout=60)
        m = re.search(r"(\d+) received", proc.stdout)
        return int(m.group(1)) if m else 0

    def close(self):
        if self.controller and self.controller.poll() is None:
            self.controller.terminate()
            self.controller.wait(10)
        servers.teardown(self.topo)


@pytest.fixture(params=["key", "tos"])
def rig(request, tmp_path):
    r = None
    try:
        r = Rig(tmp_path, request.param)
        r.start_controller()
        # BFD up on both sides and the ports released
        wait_for(lambda: all(l["state"] == "up" for l in r.rest("GET", "/v1/links")["links"]), 20, "links up")
        yield r
    finally:
        if r is not None:
            r.close()
        else:
            from minet_sdn.topology import load_topology
            p = tmp_path / "topo.yaml"
            if p.exists():
                servers.teardown(load_topology(str(p)))


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
    wait_for(lambda: rig.rest("GET", "/v1/switches")["switches"][0]["synced"]
             and all(s["synced"] for s in rig.rest("GET", "/v1/switches")["switches"]), 20, "resync")
    assert rig.metric("flow_add") == 0 and rig.metric("flow_delete") == 0
    durations = lambda lines: [re.sub(r"duration=[\d.]+s, |n_packets=\d+, n_bytes=\d+, ", "", l) for l in lines]  # noqa: E731
    assert sorted(durations(rig.flows("VM1", "VM2"))) == sorted(durations(flows_before))


def test_operator_failure_drops_carrier_on_both_routers_and_restore_brings_it_back(rig):
    out = subprocess.run(system.nsenter_argv(names.mgmt_ns(rig.topo), [
        sys.executable, "-m", "minet_sdn.cli.main", "link", "fail", rig.info.effective_topology, "1"]),
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: not rig.carrier("1.A", 1) and not rig.carrier("2.C", 1), 2, "carrier loss on both routers")
    assert rig.carrier("1.B", 2) and rig.carrier("2.C", 2)           # the other link is untouched
    assert rig.rest("GET", "/v1/links/1")["state"] == "failed"
    rig.rest("POST", "/v1/links/1/restore")
    wait_for(lambda: rig.carrier("1.A", 1) and rig.carrier("2.C", 1), 3, "carrier back")
    assert rig.ping("1.A", rig.topo.link(1).b.ip) == 3


def test_router_interface_down_is_pushed_to_the_far_router(rig):
    sh("ip", "-n", rig.routers["1.B"], "link", "set", "ext2", "down")
    wait_for(lambda: not rig.carrier("2.C", 2), 2, "the far router to lose carrier")
    assert rig.carrier("2.C", 1)
    sh("ip", "-n", rig.routers["1.B"], "link", "set", "ext2", "up")
    wait_for(lambda: rig.carrier("2.C", 2), 3, "the far router to get carrier back")


def test_underlay_cut_is_seen_by_bfd_and_every_link_of_the_pair_goes_down_on_both_sides(rig):
    t = rig.topo
    ul = names.underlay_peer_ifname(t, "VM2")
    sh("ip", "-n", names.underlay_ns(t), "link", "set", ul, "down")
    try:
        wait_for(lambda: not any(rig.carrier(r, l) for r, l in (("1.A", 1), ("1.B", 2), ("2.C", 1), ("2.C", 2))),
                 3, "every router of the pair to lose carrier")
        assert {l["state"] for l in rig.rest("GET", "/v1/links")["links"]} == {"down"}
    finally:
        sh("ip", "-n", names.underlay_ns(t), "link", "set", ul, "up")
    wait_for(lambda: all(rig.carrier(r, l) for r, l in (("1.A", 1), ("1.B", 2), ("2.C", 1), ("2.C", 2))),
             10, "carrier back after the underlay returns")
