#!/usr/bin/env python3
"""What a students' switch costs when idle, for the candidate layer-2 designs (docs/layer2.md).

    sudo flock /work/heavy.lock python3 bench/switch_cost.py [--switches 60] [--settle 10] [--window 20] [--json]

Every design is built from scratch in namespaces of its own (prefix `l2b-<pid>`), left idle for
`--settle` seconds, then the CPU time of its OvS daemons is read over `--window` seconds
(/proc/PID/stat utime + stime) and their memory (PSS, /proc/PID/smaps_rollup); then it is removed.
A switch is what the mini-Internet's current layout gives a student AS: a bridge with STP on
(standalone fail mode, as upstream), three host ports (veths to host namespaces) and two
switch-switch links.

  instance      one OvS instance (ovsdb-server + ovs-vswitchd), no bridge: the fixed cost
  shared-patch  one instance holding N switches as bridges, switch-switch links as patch ports
  shared-veth   the same with switch-switch links as veth pairs (what tc shaping needs)
  per-as        one instance per AS of 4 switches (N/4 instances), links as patch ports
  linux-bridge  Linux bridges with vlan_filtering (only if the kernel has it)

Figures are shares of one core (100 % = one core busy). The machine is shared: run it under the
heavy lock, and read the figures as orders of magnitude.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minet_sdn.provision import l2switchd  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PREFIX = f"l2b-{os.getpid()}"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def ns_add(name: str) -> None:
    sh("ip", "netns", "add", name)


def ns_exec(name: str) -> List[str]:
    return ["ip", "netns", "exec", name]


def cpu_ticks(pids: List[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def pss_mb(pids: List[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


def instance(ns: str, rundir: str) -> List[int]:
    l2switchd.ensure_running(rundir, ns_exec(ns))
    return [l2switchd.pid_of(rundir, d) for d in ("ovsdb-server", "ovs-vswitchd")]


STP = True


def build_switches(ns: str, hostns: str, rundir: str, first: int, count: int, link_kind: str) -> None:
    """`count` switches s<first>.. in one instance: STP, 3 host veths each, a ring of links per
    group of 4 (S1-S2, S2-S3, S3-S4: upstream's DCN triangle is one of these shapes)."""
    args: List[str] = []
    for k in range(first, first + count):
        b = f"s{k}"
        args += ["--", "add-br", b, "--", "set", "bridge", b, "datapath_type=netdev", f"stp_enable={str(STP).lower()}",
                 "fail_mode=standalone", "other_config:stp-forward-delay=4", "other_config:stp-max-age=6"]
        for j in range(1, 4):
            port = f"s{k}h{j}"
            sh(*ns_exec(ns), "ip", "link", "add", port, "type", "veth", "peer", "name", f"h{k}x{j}")
            sh(*ns_exec(ns), "ip", "link", "set", f"h{k}x{j}", "netns", hostns)
            sh(*ns_exec(ns), "ip", "link", "set", port, "up")
            sh(*ns_exec(hostns), "ip", "link", "set", f"h{k}x{j}", "up")
            args += ["--", "add-port", b, port]
    for k in range(first, first + count):
        if (k - first) % 4 == 3 or k + 1 >= first + count:
            continue
        a, b = f"s{k}x{k + 1}", f"s{k + 1}x{k}"
        if link_kind == "patch":
            args += ["--", "add-port", f"s{k}", a, "--", "set", "interface", a, "type=patch", f"options:peer={b}",
                     "--", "add-port", f"s{k + 1}", b, "--", "set", "interface", b, "type=patch", f"options:peer={a}"]
        else:
            sh(*ns_exec(ns), "ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh(*ns_exec(ns), "ip", "link", "set", a, "up")
            sh(*ns_exec(ns), "ip", "link", "set", b, "up")
            args += ["--", "add-port", f"s{k}", a, "--", "add-port", f"s{k + 1}", b]
    l2switchd.vsctl(rundir, *args[1:], timeout=120)


def measure(pids: List[int], settle: float, window: float) -> Dict[str, float]:
    time.sleep(settle)
    t0, c0 = time.monotonic(), cpu_ticks(pids)
    time.sleep(window)
    t1, c1 = time.monotonic(), cpu_ticks(pids)
    return {"cpu_pct_core": round(100.0 * (c1 - c0) / TICK / (t1 - t0), 2), "pss_mb": round(pss_mb(pids), 1)}


def design(name: str, switches: int, settle: float, window: float) -> Dict[str, object]:
    base = tempfile.mkdtemp(prefix=f"{PREFIX}-{name}-")
    namespaces: List[str] = []
    try:
        hostns = f"{PREFIX}-h"
        ns_add(hostns)
        namespaces.append(hostns)
        if name == "linux-bridge":
            ns = f"{PREFIX}-lb"
            ns_add(ns)
            namespaces.append(ns)
            res = sh(*ns_exec(ns), "ip", "link", "add", "b0", "type", "bridge", "vlan_filtering", "1", check=False)
            if res.returncode != 0:
                return {"design": name, "available": False, "why": res.stderr.strip()}
            return {"design": name, "available": True, "cpu_pct_core": 0.0, "note": "kernel bridges: no daemon"}
        pids: List[int] = []
        n_instances = 1 if name != "per-as" else max(1, switches // 4)
        per_instance = switches if name != "per-as" else 4
        for i in range(n_instances):
            ns = f"{PREFIX}-{i}"
            ns_add(ns)
            namespaces.append(ns)
            rundir = os.path.join(base, f"i{i}")
            pids += instance(ns, rundir)
            if name != "instance":
                build_switches(ns, hostns, rundir, 1 + i * per_instance, per_instance,
                               "veth" if name == "shared-veth" else "patch")
        out = measure(pids, settle, window)
        out.update({"design": name, "stp": STP, "instances": n_instances, "switches": 0 if name == "instance" else switches})
        if out["switches"]:
            out["cpu_pct_core_per_switch"] = round(out["cpu_pct_core"] / switches, 3)
            out["pss_mb_per_switch"] = round(out["pss_mb"] / switches, 2)
        return out
    finally:
        for ns in namespaces:
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 15)
                except (OSError, ValueError):
                    pass
            time.sleep(0.3 if pids else 0)
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", type=int, default=60, help="switches per server (class: 240 over 4 servers)")
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--designs", nargs="*", default=["instance", "shared-patch", "shared-veth", "per-as", "linux-bridge"])
    ap.add_argument("--no-stp", action="store_true", help="switches without STP (to see what STP costs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    global STP
    STP = not args.no_stp
    if os.geteuid() != 0:
        print("switch_cost.py: must run as root", file=sys.stderr)
        return 2
    results = []
    for name in args.designs:
        r = design(name, args.switches, args.settle, args.window)
        results.append(r)
        if not args.json:
            print(json.dumps(r), flush=True)
    load = os.getloadavg()
    summary = {"stp": STP, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": [round(x, 2) for x in load],
               "switches": args.switches, "window_s": args.window, "results": results}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
