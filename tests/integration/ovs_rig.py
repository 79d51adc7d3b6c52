"""The two-server rig the OvS tests share (test_controller_ovs, test_faults_ovs, test_security_ovs):
two emulated servers (namespaces with their own OvS, joined by a GRE underlay), a remote bridge
on each exactly as provisioning makes it, plain router namespaces on the links (no FRR), and the
real controller in the management namespace. Root only; `running_rig` tears everything down
whatever happens.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from minet_sdn.lab import paths, servers, system
from minet_sdn.lab.state import ProcessRecord
from minet_sdn.rest import auth
from minet_sdn.topology import names
from tests.polling import wait_until

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
        wait_until(lambda: self.rest_ok(), 20, interval=0.1, what="the controller's REST API")

    def stop_controller(self):
        self.controller.terminate()
        self.controller.wait(10)
        self.state.drop_process("test-controller")
        self.state.save()

    def rest(self, method, path):
        c = self.eff.controller
        token = auth.read_token(os.path.join(paths.state_dir(self.topo), auth.TOKEN_FILE)) or ""
        headers = {"X-Minet": "1", "Authorization": f"Bearer {token}"} if method != "GET" else {}
        code = (f"import urllib.request,sys;r=urllib.request.Request('http://{c.rest_host}:{c.rest_port}{path}',"
                f"method='{method}',data=b'' if '{method}'=='POST' else None,headers={headers!r});"
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
        wait_until(lambda: "listening on" in open(log.name).read(), 10, interval=0.1,
                   what="tcpdump to start")

        def stop():
            # deliberately a window, not a poll: frames still in flight get their chance to show up
            # (a capture that must stay at 0 is watched for that long too)
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




def links_up(rig) -> bool:
    """Every link up: BFD up on both sides and the ports released."""
    return all(l["state"] == "up" for l in rig.rest("GET", "/v1/links")["links"])


@contextmanager
def running_rig(tmp_path, mode: str):
    """A Rig in isolation `mode` with its controller started and every link up; torn down on the
    way out whatever happened, even when building it failed half-way."""
    r = None
    try:
        r = Rig(tmp_path, mode)
        r.start_controller()
        wait_until(lambda: links_up(r), 20, interval=0.1, what="links up")
        yield r
    finally:
        if r is not None:
            r.close()
        else:
            from minet_sdn.topology import load_topology
            p = Path(tmp_path) / "topo.yaml"
            if p.exists():
                servers.teardown(load_topology(str(p)))
