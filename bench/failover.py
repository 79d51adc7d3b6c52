#!/usr/bin/env python3
"""How fast a remote-link failure reaches BGP with the controller's help, and without it.

    sudo python3 bench/failover.py [--topology topologies/demo.yaml] [--link 1] [--repeat 5]
                                   [--isolation key|tos] [--json]

Needs root, Open vSwitch, FRR and sshd. Brings up a lab of the topology (a copy under a unique
instance name), lets it settle (every link up, every BGP session Established), then --repeat times:

  ours (CLI)   `minet link fail FILE L` run as a user would (a subprocess; the clock starts before
               it is spawned): time until each router of link L loses carrier (`ip monitor link` in
               its namespace, events timestamped as they arrive), and until the BGP session over L
               is no longer Established on each router (vtysh polled every ~20 ms per router).
               Then `minet link restore FILE L`: time until carrier is back and the session is
               Established again on both routers.
  ours (REST)  the same through POST /v1/links/L/fail|restore sent from this process: the controller's
               and Open vSwitch's share, without the CLI's Python start-up.
  reference    the same failure without the controller's help: link L's traffic is blackholed in the
               datapath, carrier untouched: a priority-300 drop flow on L's port of both remote
               bridges (a cookie that is not the controller's), added with ovs-ofctl. The controller
               stays up but sees no event (no port status, BFD on the tunnel still live), exactly
               like a fault it cannot observe, so the routers only notice when BGP's hold timer
               expires (FRR: keepalive 10 s, hold 30 s here). The clock starts once both drop flows
               are in (conservative: it favours the reference). The run checks that carrier never
               dropped and that the drop flows were still there when the session went down. Then the
               flows are removed and the time to Established again is recorded (connect-retry 5 s).

Reported: median / min / max per measure, and the ratio reference / ours (BGP session down on both
routers) of the medians. Results: a table and bench/results/failover-<date>.json. The lab is removed
at the end, also on failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lab_up import check_root, leftovers, machine, save, stats, unique_copy  # noqa: E402

from minet_sdn.lab import LabError, controller, convergence, observe, paths, places, quiet  # noqa: E402
from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.topology import load_topology, names  # noqa: E402

BLACKHOLE_COOKIE = 0xBE0C0000000000FF       # not 0x6d6e...: not one of the controller's flows
WAIT_S = 60.0


class Bench:
    def __init__(self, path: str, link_id: int):
        self.path = path
        self.topo = load_topology(path)
        self.link = self.topo.link(link_id)
        if not self.link.remote:
            raise SystemExit(f"link {link_id} is local: only remote links pass through the controller")
        self.ends = [(e.router, e.ifname, self.link.far(e.server).ip) for e in (self.link.a, self.link.b)]

    def ns(self, node: str) -> str:
        return places.resolve_node(self.topo, node)[0]

    def carrier(self, router: str, ifname: str) -> bool:
        return observe.carrier(self.ns(router), ifname)

    def session(self, router: str, peer_ip: str) -> str:
        return observe.bgp_state(self.topo, router, peer_ip)

    def settle(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                code, body = controller.rest_call(self.path, "GET", "/v1/links")
                links_up = code == 200 and all(l["state"] == "up" for l in body["links"])
            except LabError:
                links_up = False
            if links_up and convergence.wait_bgp(self.topo, timeout=0)[0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the lab did not settle within {timeout:g} s")
            time.sleep(0.5)

    # -- the three ways of failing the link --
    def cli(self, verb: str) -> None:
        out = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "link", verb, self.path,
                              str(self.link.id)], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"minet link {verb}: {out.stderr.strip()}")

    def rest(self, verb: str) -> None:
        code, body = controller.rest_call(self.path, "POST", f"/v1/links/{self.link.id}/{verb}")
        if code != 200:
            raise RuntimeError(f"POST /v1/links/{self.link.id}/{verb}: {code} {body}")

    def ofctl(self, server: str, *args: str) -> str:
        b = self.topo.bridge(server, self.link.far(server).server)
        mgmt = os.path.join(paths.server_dir(self.topo, server), f"{b.name}.mgmt")
        return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args[:1], f"unix:{mgmt}", *args[1:]],
                              capture_output=True, text=True, timeout=30, check=True).stdout

    def blackhole(self, on: bool) -> None:
        for server in self.link.servers():
            if on:
                self.ofctl(server, "add-flow", f"cookie={BLACKHOLE_COOKIE:#x},priority=300,"
                                               f"in_port={self.link.ofport},actions=drop")
            else:
                self.ofctl(server, "del-flows", f"cookie={BLACKHOLE_COOKIE:#x}/-1")

    def blackholed(self) -> bool:
        return all(f"cookie={BLACKHOLE_COOKIE:#x}" in self.ofctl(server, "dump-flows")
                   for server in self.link.servers())


class CarrierWatch(observe.CarrierWatch):
    """`ip monitor link` in each router's namespace (minet_sdn/lab/observe.py)."""

    def __init__(self, bench: Bench, watched: Sequence[Tuple[str, str]]):
        super().__init__(bench.ns, watched)


_STAMP = re.compile(r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] ")


class StampedCarrierWatch(observe.CarrierWatch):
    """As CarrierWatch, but each event is stamped by `ip -ts monitor` as ip reads it from the kernel,
    not when a reader thread of this process gets to it: with a hundred routers' monitors and a
    machine at load 100 or more, those threads run seconds late and would time this process, not
    the routers. ip's wall-clock stamp is turned into time.monotonic()'s scale."""

    def __init__(self, bench: Bench, watched: Sequence[Tuple[str, str]]):
        self.offset = time.time() - time.monotonic()
        self.events = {w: [] for w in watched}
        self.procs = []
        for node in sorted({n for n, _ in watched}):
            proc = subprocess.Popen(["ip", "-ts", "-n", bench.ns(node), "monitor", "link"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(node, proc), daemon=True).start()
        time.sleep(0.3)
        self.initial = {w: observe.carrier(bench.ns(w[0]), w[1]) for w in watched}

    def _read(self, node: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            stamp = _STAMP.match(line)
            if not stamp:
                continue
            at = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp() - self.offset
            m = observe._LINK_LINE.match(line[stamp.end():])
            if m and (node, m.group(1)) in self.events:
                self.events[(node, m.group(1))].append((at, observe._has_carrier(m.group(2).split(","))))


def _log_times(path: str, pattern: str, since_wall: float, utc: bool, before: float = 0.5) -> List[float]:
    """Wall-clock times (since `since_wall`) of the lines of log `path` matching `pattern`: the
    controller's log (Python logging: '2026-12-08 04:05:01,123', local time) or an ovs-vswitchd log
    ('2026-12-08T04:05:01.123Z', UTC)."""
    out: List[float] = []
    try:
        with open(path, errors="replace") as fh:
            lines = fh.readlines()[-20000:]
    except OSError:
        return out
    rx = re.compile(pattern)
    for line in lines:
        if not rx.search(line):
            continue
        try:
            if utc:
                at = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
            else:
                at = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if at >= since_wall - before:
            out.append(round(at - since_wall, 3))
    return out


def pipeline(topo, server: str, cut_wall: float) -> Dict[str, Any]:
    """Where the time of a server loss went, from the daemons' own logs (seconds after the cut):
    BFD state changes in each ovs-vswitchd, the controller's 'tunnel ... BFD down' and the PortMods
    it sent ('holding down port')."""
    bfd, flaps, stalls = [], [], []
    for name in topo.servers:
        log = os.path.join(paths.server_dir(topo, name), "ovs-vswitchd.log")
        bfd += _log_times(log, r"BFD state change: up->down", cut_wall, utc=True)
        flaps += [t for t in _log_times(log, r"BFD state change", cut_wall, utc=True, before=3600) if t < 0]
        stalls += _log_times(log, r"Unreasonably long", cut_wall, utc=True)   # its main loop stalled
    ctl = paths.state_file(topo, "controller.log")
    seen = _log_times(ctl, r"tunnel of .*: BFD down", cut_wall, utc=False)
    counted = _log_times(ctl, r"tunnel of .*: BFD down for", cut_wall, utc=False)
    mods = _log_times(ctl, r"holding down port", cut_wall, utc=False)

    def span(v: List[float]) -> Optional[List[float]]:
        return [min(v), max(v)] if v else None
    return {"vswitchd_bfd_down": span(bfd), "controller_bfd_down": span(seen),
            "controller_held_expired": span(counted), "portmods_sent": span(mods), "portmods": len(mods),
            "last_bfd_change_before_cut": max(flaps) if flaps else None,
            "vswitchd_long_poll_intervals": sorted(stalls)}


class SessionWatch:
    """Polls the BGP state of each router's session over the link; first time a predicate holds."""

    def __init__(self, bench: Bench, ends: Sequence[Tuple[str, str, str]], want: Callable[[str], bool],
                 after: float):
        self.hits: Dict[str, Optional[float]] = {r: None for r, _, _ in ends}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._poll, args=(bench, r, ip, want, after), daemon=True)
                        for r, _, ip in ends]
        for t in self.threads:
            t.start()

    def _poll(self, bench: Bench, router: str, ip: str, want: Callable[[str], bool], after: float) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            state = bench.session(router, ip)
            if started >= after and want(state):
                self.hits[router] = time.monotonic()      # seen by now (conservative: ~10-20 ms late)
                return
            time.sleep(0.02)

    def wait(self, timeout: float) -> Dict[str, Optional[float]]:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        return self.hits


def _wait_carrier(watch: CarrierWatch, ends, carrier: bool, after: float, timeout: float) -> List[Optional[float]]:
    deadline = time.monotonic() + timeout
    while True:
        ts = [watch.first((r, i), carrier, after) for r, i, _ in ends]
        if all(ts) or time.monotonic() > deadline:
            return ts
        time.sleep(0.01)


def controller_failover(bench: Bench, via: str) -> Dict[str, Any]:
    """Fail then restore the link through the controller; times in seconds from each command start."""
    ends = bench.ends
    act = bench.cli if via == "cli" else bench.rest
    watch = CarrierWatch(bench, [(r, i) for r, i, _ in ends])
    try:
        # note when the poll of the session state is about to start: the poll itself takes ~20 ms
        t0 = time.monotonic()
        down = SessionWatch(bench, ends, lambda s: s != "Established", t0)
        act("fail")
        t_cmd = time.monotonic() - t0
        carrier = _wait_carrier(watch, ends, False, t0, WAIT_S)
        bgp = down.wait(WAIT_S)
        t1 = time.monotonic()
        up = SessionWatch(bench, ends, lambda s: s == "Established", t1)
        act("restore")
        t_cmd_restore = time.monotonic() - t1
        carrier_back = _wait_carrier(watch, ends, True, t1, WAIT_S)
        bgp_up = up.wait(WAIT_S)
    finally:
        watch.stop()
    if None in carrier or None in bgp.values() or None in bgp_up.values() or None in carrier_back:
        raise RuntimeError(f"{via}: something did not happen: carrier {carrier}, bgp down {bgp}, "
                           f"carrier back {carrier_back}, bgp up {bgp_up}")
    return {
        "command": round(t_cmd, 4),
        "carrier_lost": [round(t - t0, 4) for t in carrier],
        "carrier_lost_both": round(max(carrier) - t0, 4),
        "carrier_skew": round(abs(carrier[0] - carrier[1]), 4),
        "bgp_down": [round(bgp[r] - t0, 4) for r, _, _ in ends],
        "bgp_down_both": round(max(bgp.values()) - t0, 4),
        "restore_command": round(t_cmd_restore, 4),
        "carrier_back_both": round(max(carrier_back) - t1, 4),
        "bgp_up_both": round(max(bgp_up.values()) - t1, 4),
    }


def reference_failover(bench: Bench) -> Dict[str, Any]:
    """The same link blackholed in the datapath, carrier untouched: BGP's hold timer must notice."""
    ends = bench.ends
    watch = CarrierWatch(bench, [(r, i) for r, i, _ in ends])
    installed = False
    try:
        bench.blackhole(True)
        installed = True
        t0 = time.monotonic()
        down = SessionWatch(bench, ends, lambda s: s != "Established", t0)
        bgp = down.wait(WAIT_S)
        still = bench.blackholed()
        carrier_kept = not any(not c for evs in watch.events.values() for _, c in evs)
        t1 = time.monotonic()
        up = SessionWatch(bench, ends, lambda s: s == "Established", t1)
        bench.blackhole(False)
        installed = False
        bgp_up = up.wait(WAIT_S)
    finally:
        if installed:
            bench.blackhole(False)
        watch.stop()
    if None in bgp.values() or None in bgp_up.values():
        raise RuntimeError(f"reference: bgp down {bgp}, bgp up {bgp_up}")
    if not still or not carrier_kept:
        raise RuntimeError(f"reference invalid: drop flows still there {still}, carrier kept {carrier_kept}")
    return {"bgp_down": [round(bgp[r] - t0, 4) for r, _, _ in ends],
            "bgp_down_both": round(max(bgp.values()) - t0, 4),
            "bgp_up_both": round(max(bgp_up.values()) - t1, 4)}


# ---- server loss: a server's underlay cut, every router of its remote links -------------------------

def server_loss_trial(bench: Bench, server: str) -> Dict[str, Any]:
    """Cut `server`'s underlay (its link to the underlay switch down): for every end, on a configured
    router, of every remote link of `server`, the time until it lost carrier (the controller failing
    the links once BFD on the tunnels says so); then the underlay back, and the time until every one
    has carrier again."""
    topo = bench.topo
    configured = set(convergence.configured_routers(topo))
    ends = [(e.router, e.ifname) for l in topo.remote_links if server in l.servers()
            for e in (l.a, l.b) if e.router in configured]
    ul = names.underlay_peer_ifname(topo, server)
    watch = StampedCarrierWatch(bench, ends)
    try:
        load = os.getloadavg()[0]
        t0, cut_wall = time.monotonic(), time.time()
        subprocess.run(["ip", "-n", names.underlay_ns(topo), "link", "set", ul, "down"], check=True)
        lost = _wait_carrier(watch, [(r, i, None) for r, i in ends], False, t0, 15.0)
        time.sleep(0.5)                 # the controller's log lines of the last PortMods are written
        where = pipeline(topo, server, cut_wall)
        t1 = time.monotonic()
        subprocess.run(["ip", "-n", names.underlay_ns(topo), "link", "set", ul, "up"], check=True)
        back = _wait_carrier(watch, [(r, i, None) for r, i in ends], True, t1, 30.0)
    finally:
        watch.stop()
    return {"server": server, "ends": len(ends), "loadavg_at_cut": round(load, 1), "pipeline": where,
            "lost": [None if t is None else round(t - t0, 4) for t in lost],
            "back_all": None if None in back else round(max(back) - t1, 4)}


def pct(values: List[float], q: float) -> Optional[float]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    k = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))      # nearest rank
    return round(values[k], 4)


def bfd_counts(path: str) -> Dict[str, Any]:
    """The controller's BFD history of every tunnel (core/damping.py via /v1/switches)."""
    code, body = controller.rest_call(path, "GET", "/v1/switches")
    sw = body.get("switches", []) if code == 200 and isinstance(body, dict) else []
    return {"transitions": sum(s.get("bfd_transitions", 0) for s in sw),
            "holds": sum(s.get("bfd_holds", 0) for s in sw),
            "held_now": sum(1 for s in sw if s.get("bfd_held")),
            "per_bridge": {f"{s['server']}-{s['peer']}": s.get("bfd_transitions", 0) for s in sw}}


def cuts(args, bench: Bench, path: str, trials: List[Dict[str, Any]], report: Dict[str, Any]) -> None:
    """--server-loss N: N cuts of --lost-server's underlay, the lab settled before each."""
    for i in range(args.server_loss):
        server = args.lost_server
        t_settle = time.monotonic()
        try:
            bench.settle(timeout=args.settle)
        except RuntimeError as exc:      # a figure too: say so, keep what was measured
            report["not_settled"] = f"before cut {i + 1}: {exc}"
            print(f"  {report['not_settled']}", flush=True)
            break
        settled = round(time.monotonic() - t_settle, 1)
        print(f"  settled in {settled:.1f} s", flush=True)
        before = bfd_counts(path)["holds"]
        trials.append(server_loss_trial(bench, server))
        trials[-1]["settled_s"] = settled
        trials[-1]["holds"] = bfd_counts(path)["holds"] - before
        lost = trials[-1]["lost"]
        print(f"  cut {i + 1}: {server} lost, {trials[-1]['ends']} router ends: p50 {pct(lost, 50)} s, "
              f"p95 {pct(lost, 95)} s, max {max((t for t in lost if t is not None), default=None)} s, "
              f"missed {sum(1 for t in lost if t is None)}; all back {trials[-1]['back_all']} s; "
              f"load {trials[-1]['loadavg_at_cut']}, held {trials[-1]['holds']}, "
              f"min {min((t for t in lost if t is not None), default=None)} s; "
              f"pipeline {json.dumps(trials[-1]['pipeline'])}", flush=True)


def server_loss_main(args, info: Dict[str, Any], command: str) -> int:
    """Lab up (timed, BFD transitions during start-up counted), then --server-loss cuts."""
    def interrupted(signum, frame):            # `timeout` sends SIGTERM: remove the lab all the same
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    if args.no_damping:
        os.environ["MINET_BFD_DAMPING"] = "off"        # the controller `lab up` starts inherits it
    report: Dict[str, Any] = {"command": command, "machine": info, "topology": args.topology,
                              "damping": not args.no_damping}
    with tempfile.TemporaryDirectory(prefix="minet-bench-") as workdir:
        path = unique_copy(args.topology, workdir, "bs")
        topo = load_topology(path)
        report.update(routers=len(topo.routers), servers=len(topo.servers), remote_links=len(topo.remote_links),
                      bfd_interval_ms=topo.fabric.bfd_interval_ms)
        print(f"## {args.topology}: {len(topo.routers)} routers, {len(topo.servers)} servers, "
              f"{len(topo.remote_links)} remote links, BFD {topo.fabric.bfd_interval_ms} ms, dampening "
              f"{'off' if args.no_damping else 'on'}", flush=True)
        try:
            t0 = time.monotonic()
            try:
                Lab(path, progress=lambda m: print(f"  {m}", flush=True) if args.verbose else None).up()
                report["up_seconds"] = round(time.monotonic() - t0, 1)
            except LabError as exc:
                report["up_seconds"] = None
                report["up_error"] = str(exc)
                print(f"  lab up failed after {time.monotonic() - t0:.0f} s: {exc}", flush=True)
            report["startup_bfd"] = bfd_counts(path)
            print(f"  up: {report['up_seconds']} s; BFD during start-up: {json.dumps(report['startup_bfd'])}",
                  flush=True)
            trials = []
            if report.get("up_seconds") is not None:
                bench = Bench(path, next(l.id for l in topo.links if l.remote))
                try:
                    cuts(args, bench, path, trials, report)
                except KeyboardInterrupt:        # `timeout`: keep the cuts measured so far, then clean up
                    report["stopped"] = f"interrupted after {len(trials)} cuts"
                    print(f"  {report['stopped']}", flush=True)
            report["trials"] = trials
            every = [t for tr in trials for t in tr["lost"]]
            report["server_loss"] = {"ends_x_cuts": len(every), "missed": sum(1 for t in every if t is None),
                                     "p50": pct(every, 50), "p95": pct(every, 95),
                                     "max": max((t for t in every if t is not None), default=None)}
            report["after_cuts_bfd"] = bfd_counts(path) if report.get("up_seconds") is not None else None
        finally:
            problems = Lab(path, progress=quiet).remove()
            left = leftovers(topo)
            if problems or left:
                print(f"cleanup problems: {problems} {left}", file=sys.stderr)
    out = save("failover-server-loss", report)
    print(f"\nserver loss over every router end and cut: {json.dumps(report.get('server_loss'))}")
    print(f"saved {os.path.relpath(out, ROOT)}; reproduce: sudo python3 {command}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="failover time with and without the controller")
    p.add_argument("--topology", default=str(ROOT / "topologies" / "demo.yaml"))
    p.add_argument("--link", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--isolation", choices=["key", "tos"], help="override the topology's isolation mode")
    p.add_argument("--json", action="store_true")
    p.add_argument("--server-loss", type=int, default=0, metavar="N",
                   help="instead: N cuts of a server's underlay (--lost-server); every router of its remote "
                        "links timed until it loses carrier; with lab up's time and BFD transitions at start-up")
    p.add_argument("--lost-server", default="VM2")
    p.add_argument("--no-damping", action="store_true",
                   help="with --server-loss: the controller without BFD dampening (MINET_BFD_DAMPING=off)")
    p.add_argument("--settle", type=float, default=300.0, metavar="SECONDS",
                   help="with --server-loss: how long to wait for BGP to settle before each cut")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    check_root()
    info = machine()
    print(f"# bench/failover.py on {info['cpus']} CPUs, load {info['loadavg'][0]:.2f}; {info['ovs']}; {info['frr']}",
          flush=True)
    command = " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv or sys.argv[1:]))
    if args.server_loss or args.no_damping:
        return server_loss_main(args, info, command)
    runs: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="minet-bench-") as workdir:
        fabric = {"isolation": args.isolation} if args.isolation else {}
        path = unique_copy(args.topology, workdir, "bf", **fabric)
        topo = load_topology(path)
        try:
            Lab(path, progress=lambda m: None).up()
            bench = Bench(path, args.link)
            link = bench.link
            print(f"## {os.path.relpath(args.topology, ROOT)} ({topo.fabric.isolation}), link {link.id}: "
                  f"{link.a.router} ({link.a.server}) - {link.b.router} ({link.b.server})", flush=True)
            for i in range(args.repeat):
                bench.settle()
                cli = controller_failover(bench, "cli")
                bench.settle()
                rest = controller_failover(bench, "rest")
                bench.settle()
                ref = reference_failover(bench)
                runs.append({"cli": cli, "rest": rest, "reference": ref, "loadavg": os.getloadavg()[0]})
                print(f"  run {i + 1}: CLI: carrier lost {cli['carrier_lost_both']:.3f}s (command "
                      f"{cli['command']:.3f}s, skew {cli['carrier_skew'] * 1000:.1f}ms), BGP down "
                      f"{cli['bgp_down_both']:.3f}s, BGP up after restore {cli['bgp_up_both']:.2f}s | REST: "
                      f"carrier {rest['carrier_lost_both']:.3f}s, BGP down {rest['bgp_down_both']:.3f}s | "
                      f"reference: BGP down {ref['bgp_down_both']:.2f}s, up again {ref['bgp_up_both']:.2f}s",
                      flush=True)
        finally:
            problems = Lab(path, progress=quiet).remove()
            left = leftovers(topo)
            if problems or left:
                print(f"cleanup problems: {problems} {left}", file=sys.stderr)
    measures = {
        "cli.carrier_lost_both": [r["cli"]["carrier_lost_both"] for r in runs],
        "cli.carrier_skew": [r["cli"]["carrier_skew"] for r in runs],
        "cli.command": [r["cli"]["command"] for r in runs],
        "cli.bgp_down_both": [r["cli"]["bgp_down_both"] for r in runs],
        "cli.bgp_up_both": [r["cli"]["bgp_up_both"] for r in runs],
        "rest.carrier_lost_both": [r["rest"]["carrier_lost_both"] for r in runs],
        "rest.bgp_down_both": [r["rest"]["bgp_down_both"] for r in runs],
        "rest.bgp_up_both": [r["rest"]["bgp_up_both"] for r in runs],
        "reference.bgp_down_both": [r["reference"]["bgp_down_both"] for r in runs],
        "reference.bgp_up_both": [r["reference"]["bgp_up_both"] for r in runs],
    }
    summary = {k: stats(v) for k, v in measures.items()}
    ref = summary["reference.bgp_down_both"]["median"]
    ratio = {via: round(ref / summary[f"{via}.bgp_down_both"]["median"], 1) for via in ("cli", "rest")}
    report = {"command": command, "machine": info, "topology": os.path.relpath(args.topology, ROOT),
              "isolation": topo.fabric.isolation, "link": args.link, "runs": runs, "summary": summary,
              "ratio_reference_over_ours_bgp_down": ratio}
    out = save("failover", report)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\nseconds (median [min-max] over the repetitions)")
        for k, s in summary.items():
            print(f"  {k:<26} {s['median']:8.3f} [{s['min']:.3f}-{s['max']:.3f}]")
        print(f"  BGP session down on both routers: hold timer (reference) / controller = {ratio['cli']}x "
              f"(from the CLI command), {ratio['rest']}x (from the REST call)")
    print(f"\nsaved {os.path.relpath(out, ROOT)}; reproduce: sudo python3 {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
