#!/usr/bin/env python3
"""Data plane, ours vs the static design it replaces (bench/baseline.py), in one run.

    sudo python3 bench/versus.py [--topology topologies/demo.yaml] [--trials 30]
                                 [--baseline-trials 5] [--iperf-seconds 5] [--json]

Needs root, Open vSwitch, FRR, sshd, tcpdump and iperf3. Brings up two labs of the topology (unique
instance names): one in key isolation, one in tos; measures ours on both, then turns the tos lab
into the baseline (no controller, static ovs-ofctl flows, DSCP mark/demark, ARP forwarded into
the tunnel and flooded, fail_mode=standalone) and measures it the same way. Labs are removed at
the end, also on failure or Ctrl-C.

  arp        every router's neighbour cache flushed, then every router pings the far end of each
             of its remote links (1 packet) and every host pings every other AS's host (1 packet
             each): "cold". Then the same pings again with the caches warm: "steady". Counted: ARP
             frames inside GRE on the underlay (tcpdump on every server's underlay link, traffic
             leaving that server only, so each tunnelled frame counts once), and packet-ins at the
             controller (GET /metrics).
  failure    link L (default: the first remote link) failed by what a router would see: the
             interface of its a-side router goes down (`ip link set ... down` in the router's
             namespace). Timed from that command: the b-side router loses carrier, its BGP session
             over L leaves Established, and its FIB route towards the a-side AS prefix stops using
             L (traffic on an alternative path). Then the interface comes back up: carrier back and
             BGP Established again. --trials times for ours, --baseline-trials for the baseline
             (each waits for the hold timer: ~30 s).
  iperf      iperf3 TCP, --iperf-seconds, from L's a-side router to its b-side address: through
             the remote bridges and GRE (ours key, ours tos, baseline), and over a local link
             (a plain veth between two routers on one server): the raw reference.

Results: a table and bench/results/versus-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from baseline import convert                                          # noqa: E402
from failover import Bench, CarrierWatch, SessionWatch, _wait_carrier    # noqa: E402
from lab_up import check_root, leftovers, machine, save, unique_copy   # noqa: E402

from minet_sdn.lab import controller, convergence, quiet  # noqa: E402
from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.lab import state as lab_state  # noqa: E402
from minet_sdn.topology import load_topology, names  # noqa: E402
from minet_sdn.topology.places import host_id  # noqa: E402
from minet_sdn.topology.addressing import as_addressing  # noqa: E402

WAIT = 60.0


def pct(values: List[float], q: float) -> Optional[float]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    k = max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))     # nearest rank
    return round(values[k], 4)


def summary(values: List[Optional[float]]) -> Dict[str, Any]:
    vals = [v for v in values if v is not None]
    return {"n": len(values), "missing": len(values) - len(vals),
            "median": round(statistics.median(vals), 4) if vals else None,
            "p95": pct(vals, 95), "max": round(max(vals), 4) if vals else None}


class MeasuredLab:
    def __init__(self, path: str, link_id: Optional[int]):
        self.path = path
        self.topo = load_topology(path)
        remote = [l for l in self.topo.links if l.remote]
        self.link = self.topo.link(link_id) if link_id else remote[0]
        self.bench = Bench(path, self.link.id)
        self.local = next((l for l in self.topo.links if not l.remote), None)

    def ns(self, node: str) -> str:
        return self.bench.ns(node)

    def sh(self, ns: str, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(names.exec_prefix("netns", ns) + list(argv), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def routers(self) -> List[str]:
        return convergence.configured_routers(self.topo)

    def hosts(self) -> List[str]:
        return [host_id(r) for r in self.routers()]

    # -- ARP ------------------------------------------------------------------------------------
    def arp_round(self, flush: bool) -> Dict[str, Any]:
        if flush:
            for node in self.routers() + self.hosts():
                self.sh(self.ns(node), "ip", "neigh", "flush", "all")
        caps = []
        for server in self.topo.servers:
            pcap = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False).name
            ul = names.underlay_peer_ifname(self.topo, server)
            src = self.topo.servers[server].underlay_ip
            proc = subprocess.Popen(names.exec_prefix("netns", names.underlay_ns(self.topo)) + ["tcpdump", "-n", "-p", "-U",
                                     "-i", ul, "-w", pcap, f"ip proto 47 and src host {src}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            caps.append((proc, pcap))
        time.sleep(1.0)
        pins0 = self.packet_ins()
        pings = 0
        for link in self.topo.remote_links:
            for end in (link.a, link.b):
                if self._configured(end.router):
                    self.sh(self.ns(end.router), "ping", "-c", "1", "-W", "1", link.far(end.server).ip)
                    pings += 1
        plans = {r: self._host_ip(r) for r in self.routers()}
        for src in self.routers():
            for dst, ip in plans.items():
                if dst.split(".")[0] != src.split(".")[0] and ip:
                    self.sh(self.ns(f"{src}.host"), "ping", "-c", "1", "-W", "1", ip)
                    pings += 1
        time.sleep(1.0)
        arp = 0
        for proc, pcap in caps:
            proc.terminate()
            proc.wait(10)
            out = subprocess.run(["tcpdump", "-n", "-r", pcap], capture_output=True, text=True, timeout=30).stdout
            arp += sum(1 for line in out.splitlines() if "ARP" in line)
            os.unlink(pcap)
        pins1 = self.packet_ins()
        return {"pings": pings, "arp_in_tunnels": arp,
                "packet_ins": None if pins0 is None or pins1 is None else pins1 - pins0}

    def _configured(self, router: str) -> bool:
        return router in self.routers()

    def _host_ip(self, router: str) -> Optional[str]:
        asn, name = router.split(".", 1)
        r = as_addressing(self.topo.ases[int(asn)]).routers.get(name)
        return r.host_ip if r else None

    def packet_ins(self) -> Optional[int]:
        try:
            code, body = controller.rest_call(self.path, "GET", "/metrics")
        except Exception:              # no controller (the baseline): nothing to count
            return None
        if code != 200:
            return None
        text = body if isinstance(body, str) else json.dumps(body)
        m = re.search(r'minet_controller_messages_total\{kind="packet_in"\} (\d+)', text)
        return int(m.group(1)) if m else 0

    # -- failure ----------------------------------------------------------------------------------
    def settle(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not convergence.wait_bgp(self.topo, timeout=0)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("BGP did not settle")
            time.sleep(0.3)

    def _route_via(self, router: str, prefix: str, via: str) -> bool:
        out = self.sh(self.ns(router), "ip", "route", "show", prefix).stdout
        return re.search(rf"via {re.escape(via)}\b", out) is not None

    def failure_trial(self) -> Dict[str, Any]:
        a, b = self.link.a, self.link.b
        prefix = as_addressing(self.topo.ases[int(a.router.split(".")[0])]).prefix
        watch = CarrierWatch(self.bench, [(b.router, b.ifname)])
        try:
            t0 = time.monotonic()
            down = SessionWatch(self.bench, [(b.router, b.ifname, a.ip)], lambda s: s != "Established", t0)
            self.sh(self.ns(a.router), "ip", "link", "set", a.ifname, "down", check=True)
            carrier = _wait_carrier(watch, [(b.router, b.ifname, None)], False, t0, 3.0)[0]
            t_path = None
            deadline = time.monotonic() + WAIT
            while prefix and time.monotonic() < deadline:
                if not self._route_via(b.router, prefix, a.ip):
                    t_path = time.monotonic()
                    break
                time.sleep(0.01)
            bgp = down.wait(WAIT)[b.router]
            t1 = time.monotonic()
            up = SessionWatch(self.bench, [(b.router, b.ifname, a.ip)], lambda s: s == "Established", t1)
            self.sh(self.ns(a.router), "ip", "link", "set", a.ifname, "up", check=True)
            carrier_back = _wait_carrier(watch, [(b.router, b.ifname, None)], True, t1, 10.0)[0] if carrier else None
            bgp_up = up.wait(WAIT)[b.router]
        finally:
            watch.stop()
        rel = lambda t, z: None if t is None else round(t - z, 4)  # noqa: E731
        return {"carrier_lost": rel(carrier, t0), "bgp_down": rel(bgp, t0), "other_path": rel(t_path, t0),
                "carrier_back": rel(carrier_back, t1), "bgp_up": rel(bgp_up, t1)}

    def failures(self, n: int, say) -> Dict[str, Any]:
        trials = []
        for i in range(n):
            self.settle()
            trials.append(self.failure_trial())
            say(f"    trial {i + 1}/{n}: {trials[-1]}")
        keys = trials[0].keys() if trials else []
        return {"trials": trials, "summary": {k: summary([t[k] for t in trials]) for k in keys}}

    # -- server loss ----------------------------------------------------------------------------
    def underlay_trial(self, x: str = "VM1", y: str = "VM2") -> Dict[str, Any]:
        """Cut the underlay between x and y (y's underlay link down): time until every router of
        every remote link of the pair has lost carrier, then until all have it back."""
        ends = [(e.router, e.ifname) for l in self.topo.remote_links if set(l.servers()) == {x, y}
                for e in (l.a, l.b) if self._configured(e.router)]
        ul = names.underlay_peer_ifname(self.topo, y)
        watch = CarrierWatch(self.bench, ends)
        try:
            t0 = time.monotonic()
            subprocess.run(["ip", "-n", names.underlay_ns(self.topo), "link", "set", ul, "down"], check=True)
            lost = _wait_carrier(watch, [(r, i, None) for r, i in ends], False, t0, 10.0)
            t1 = time.monotonic()
            subprocess.run(["ip", "-n", names.underlay_ns(self.topo), "link", "set", ul, "up"], check=True)
            back = _wait_carrier(watch, [(r, i, None) for r, i in ends], True, t1, 20.0)
        finally:
            watch.stop()
        return {"links_down_both_sides": None if None in lost else round(max(lost) - t0, 4),
                "back": None if None in back else round(max(back) - t1, 4), "ends": len(ends)}

    # -- throughput -------------------------------------------------------------------------------
    def iperf(self, link, seconds: int) -> Optional[float]:
        a, b = link.a, link.b
        srv = subprocess.Popen(names.exec_prefix("netns", self.ns(b.router)) + ["iperf3", "-s", "-1", "-B", b.ip],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            out = self.sh(self.ns(a.router), "iperf3", "-c", b.ip, "-B", a.ip, "-t", str(seconds), "-J",
                          timeout=seconds + 30)
            data = json.loads(out.stdout or "{}")
            bps = data.get("end", {}).get("sum_received", {}).get("bits_per_second")
            return round(bps / 1e6, 1) if bps else None
        finally:
            if srv.poll() is None:
                srv.terminate()
            srv.wait(10)


def measure(lab: MeasuredLab, args, say, label: str) -> Dict[str, Any]:
    say(f"## {label}: link {lab.link.id} {lab.link.a.router} - {lab.link.b.router}")
    lab.settle()
    out: Dict[str, Any] = {}
    out["arp_cold"] = lab.arp_round(flush=True)
    out["arp_steady"] = lab.arp_round(flush=False)
    say(f"  ARP: cold {out['arp_cold']}, steady {out['arp_steady']}")
    out["iperf_mbps"] = lab.iperf(lab.link, args.iperf_seconds)
    say(f"  iperf3 over remote link {lab.link.id}: {out['iperf_mbps']} Mbit/s")
    n = args.baseline_trials if label == "baseline" else args.trials
    out["failure"] = lab.failures(n, say) if n else None
    if out["failure"]:
        say(f"  failure: {json.dumps(out['failure']['summary'])}")
    return out


def underlay_only(args) -> int:
    check_root()
    info = machine()
    print(f"# bench/versus.py --underlay-trials {args.underlay_trials}; load {info['loadavg'][0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="minet-versus-") as work:
        path = unique_copy(args.topology, work, "vu", isolation="key")
        bfd = load_topology(path).fabric.bfd_interval_ms
        try:
            Lab(path, progress=lambda m: None).up()
            lab = MeasuredLab(path, args.link)
            trials = []
            for i in range(args.underlay_trials):
                lab.settle()
                trials.append(lab.underlay_trial())
                print(f"  cut {i + 1}: {trials[-1]}", flush=True)
        finally:
            Lab(path, progress=quiet).remove()
    res = {k: summary([t[k] for t in trials]) for k in ("links_down_both_sides", "back")}
    out = save("versus-underlay", {"command": " ".join(["python3 bench/versus.py"] + sys.argv[1:]),
                                    "machine": info, "trials": trials, "summary": res,
                                    "bfd_interval_ms": bfd})
    print(json.dumps(res), f"\nsaved {os.path.relpath(out, ROOT)}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topology", default=str(ROOT / "topologies" / "demo.yaml"))
    p.add_argument("--link", type=int, default=None)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--baseline-trials", type=int, default=5)
    p.add_argument("--iperf-seconds", type=int, default=5)
    p.add_argument("--underlay-trials", type=int, default=0, metavar="N",
                   help="only this: N underlay cuts between VM1 and VM2 on a key lab (server loss, BFD)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.underlay_trials:
        return underlay_only(args)
    check_root()
    say = (lambda m: print(m, flush=True))
    info = machine()
    say(f"# bench/versus.py on {info['cpus']} CPUs, load {info['loadavg'][0]:.2f}; {info['ovs']}; {info['frr']}")
    report: Dict[str, Any] = {"command": " ".join(["bench/versus.py"] + (argv or sys.argv[1:])), "machine": info,
                              "topology": os.path.relpath(args.topology, ROOT), "results": {}}
    with tempfile.TemporaryDirectory(prefix="minet-versus-") as work:
        paths = {mode: unique_copy(args.topology, work, f"v{mode[0]}", isolation=mode) for mode in ("key", "tos")}
        try:
            for mode in ("key", "tos"):
                Lab(paths[mode], progress=lambda m: None).up()
                lab = MeasuredLab(paths[mode], args.link)
                report["results"][f"ours_{mode}"] = measure(lab, args, say, f"ours ({mode})")
                if mode == "tos":
                    if lab.local is not None:
                        report["results"]["direct_veth_iperf_mbps"] = lab.iperf(lab.local, args.iperf_seconds)
                        say(f"  iperf3 over local link {lab.local.id} (plain veth): "
                            f"{report['results']['direct_veth_iperf_mbps']} Mbit/s")
                    convert(paths[mode])
                    report["results"]["baseline"] = measure(lab, args, say, "baseline")
                Lab(paths[mode], progress=quiet).remove()
        finally:
            for path in paths.values():
                topo = load_topology(path)
                if lab_state.LabState.load(topo) is not None:
                    Lab(path, progress=quiet).remove()
                left = leftovers(topo)
                if left:
                    print(f"cleanup left: {left}", file=sys.stderr)
    out = save("versus", report)
    r = report["results"]
    say("\n| | ours key | ours tos | baseline |")
    say("|---|---|---|---|")
    for k in ("arp_cold", "arp_steady"):
        say(f"| ARP frames in tunnels ({k[4:]}) | " + " | ".join(str(r[x][k]["arp_in_tunnels"]) for x in
                                                                ("ours_key", "ours_tos", "baseline")) + " |")
        say(f"| packet-ins ({k[4:]}) | " + " | ".join(str(r[x][k]["packet_ins"]) for x in
                                                      ("ours_key", "ours_tos", "baseline")) + " |")
    say("| iperf3 Mbit/s over the remote link | " + " | ".join(str(r[x]["iperf_mbps"]) for x in
                                                               ("ours_key", "ours_tos", "baseline"))
        + f" | (plain veth: {r.get('direct_veth_iperf_mbps')})")
    for k in ("carrier_lost", "bgp_down", "other_path", "carrier_back", "bgp_up"):
        cells = []
        for x in ("ours_key", "ours_tos", "baseline"):
            f = r[x]["failure"]
            s = f["summary"][k] if f else None
            cells.append(f"{s['median']} / p95 {s['p95']} (n={s['n']}, missing {s['missing']})" if s else "-")
        say(f"| {k} s, median / p95 | " + " | ".join(cells) + " |")
    say(f"\nsaved {os.path.relpath(out, ROOT)}")
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
