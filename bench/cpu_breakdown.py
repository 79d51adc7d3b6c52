#!/usr/bin/env python3
"""Where a lab's steady CPU goes: per process kind and per emulated server.

    sudo python3 bench/cpu_breakdown.py [--ases 60] [--settle 30] [--seconds 60] [--merge-timeout 300]
                                        [--topology FILE]

Brings up a class-shaped lab (`minet generate class --ases N --servers 4`, or --topology FILE under a
unique instance name), waits until every route is there (`lab up` returns), --settle seconds more and
until kernel page merging settles (bounded by --merge-timeout), then counts CPU time over --seconds:

  per process kind   the command name (bgpd, ospfd, zebra, ovs-vswitchd, ovsdb-server, sshd, the
                     controller's python, ...), every process inside the lab's namespaces, plus ksmd
                     (the kernel's page-merging thread, which works for the lab's FRR only here)
  per server         the same, split by the emulated server the namespace belongs to (a router's
                     namespace counts for its server; the management and underlay namespaces for "lab")

as % of the whole machine (100 % = every core busy), with the machine's own busy share in the same
window. The machine is shared: other work shows in `machine_pct`, not in the lab's figures, but it
slows the lab too; compare runs by the lab's share, taken close together. The lab is removed at
the end, also on failure. Results: bench/results/cpu_breakdown-<date>.json and a table.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lab_up import check_root, leftovers, machine, unique_copy   # noqa: E402
from sampling import ksm_settle, ksmd_ticks  # noqa: E402

from minet_sdn import host  # noqa: E402
from minet_sdn.lab import quiet  # noqa: E402
from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.topology import load_topology, names  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def ns_servers(lab: Lab) -> Dict[str, str]:
    """namespace name -> the emulated server it belongs to ("lab" for the shared ones)."""
    topo = lab.topo
    out = {names.server_ns(topo, s): s for s in topo.servers}
    for p in lab.places().values():
        out[p.ns] = p.server
    return out


def lab_tasks(tag: str, servers: Dict[str, str]) -> Dict[int, Tuple[str, str]]:
    """pid -> (command name, server) of every process in one of the lab's namespaces."""
    idents = {}
    for name in os.listdir(host.NETNS_DIR):
        if name.startswith(f"{tag}-"):
            st = os.stat(os.path.join(host.NETNS_DIR, name))
            idents[(st.st_dev, st.st_ino)] = servers.get(name, "lab")
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
                server = idents.get((st.st_dev, st.st_ino))
                if server is not None:
                    with open(f"/proc/{entry}/comm") as fh:
                        out[int(entry)] = (fh.read().strip(), server)
            except OSError:
                pass
    return out


def process_ticks(pid: int) -> Tuple[int, int]:
    """(CPU ticks of every thread of `pid`, their voluntary context switches: how often it woke)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(") ", 1)[1].split()
    wakeups = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                for line in fh:
                    if line.startswith("voluntary_ctxt_switches:"):
                        wakeups += int(line.split()[1])
                        break
    return int(f[11]) + int(f[12]), wakeups


def breakdown(tag: str, servers: Dict[str, str], seconds: float) -> Dict[str, Any]:
    hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1

    def sample() -> Dict[Tuple[int, str, str], Tuple[int, int]]:
        got = {}
        for pid, (comm, server) in lab_tasks(tag, servers).items():
            try:
                got[(pid, comm, server)] = process_ticks(pid)
            except (OSError, IndexError, ValueError):
                pass
        k = ksmd_ticks()
        if k is not None:
            got[(0, "ksmd", "kernel")] = (k, 0)
        return got

    def busy() -> Tuple[int, int]:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], sum(v)

    a, (b0, t0), s0 = sample(), busy(), time.monotonic()
    time.sleep(seconds)
    b, (b1, t1), dt = sample(), busy(), time.monotonic() - s0
    kinds: Dict[str, float] = {}
    per_server: Dict[str, Dict[str, float]] = {}
    counts: Dict[str, int] = {}
    wakeups: Dict[str, int] = {}
    for key, (ticks, woke) in b.items():
        if key not in a:
            continue
        pct = (ticks - a[key][0]) / hz / dt / ncpu * 100
        _pid, comm, server = key
        kinds[comm] = kinds.get(comm, 0.0) + pct
        counts[comm] = counts.get(comm, 0) + 1
        wakeups[comm] = wakeups.get(comm, 0) + woke - a[key][1]
        per_server.setdefault(server, {})
        per_server[server][comm] = per_server[server].get(comm, 0.0) + pct
    return {"lab_pct": round(sum(kinds.values()), 2), "machine_pct": round(100 * (b1 - b0) / max(1, t1 - t0), 1),
            "seconds": round(dt, 1),
            # CPU per wake-up is what a daemon costs each time a timer or a packet wakes it: with
            # hundreds of mostly idle daemons, how often they wake is what the steady CPU follows
            "by_kind": {k: {"pct": round(v, 2), "processes": counts[k],
                            "ms_per_s_each": round(v / 100 * ncpu * 1000 / counts[k], 3),
                            "wakeups_per_s_each": round(wakeups[k] / dt / counts[k], 2)}
                        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "by_server": {s: {"total": round(sum(d.values()), 2),
                              **{k: round(v, 2) for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v >= 0.05}}
                          for s, d in sorted(per_server.items())}}


def run(path: str, args) -> Dict[str, Any]:
    topo = load_topology(path)
    r: Dict[str, Any] = {"routers": len(topo.routers), "links": len(topo.links),
                         "remote_links": len(topo.remote_links)}
    t0 = time.monotonic()
    try:
        lab = Lab(path, progress=quiet)
        lab.up(bgp_timeout=args.timeout)
        r["up_s"] = round(time.monotonic() - t0, 1)
        time.sleep(args.settle)
        r["ksm"] = ksm_settle(args.merge_timeout)
        r["cpu"] = breakdown(topo.tag, ns_servers(lab), args.seconds)
    finally:
        Lab(path, progress=quiet).remove()
    left = leftovers(topo)
    if left:
        raise RuntimeError(f"lab down left {left}")
    return r


def table(r: Dict[str, Any]) -> str:
    c = r["cpu"]
    out = [f"lab {c['lab_pct']:.1f} % of the machine (machine busy {c['machine_pct']:.1f} %), "
           f"{r['routers']} routers, {r['remote_links']} remote links", "",
           "| process | count | % of machine | CPU ms/s each | wake-ups/s each |", "|---|---|---|---|---|"]
    for k, v in c["by_kind"].items():
        out.append(f"| {k} | {v['processes']} | {v['pct']:.2f} | {v['ms_per_s_each']:.3f} | "
                   f"{v['wakeups_per_s_each']:.2f} |")
    out += ["", "| server | total | top |", "|---|---|---|"]
    for s, d in c["by_server"].items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(d.items())[1:6])
        out.append(f"| {s} | {d['total']:.2f} | {top} |")
    return "\n".join(out)


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description="steady CPU of a lab by process kind and server")
    p.add_argument("--ases", type=int, default=60)
    p.add_argument("--topology", help="a topology file instead of the class topology")
    p.add_argument("--settle", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--merge-timeout", type=float, default=300.0)
    p.add_argument("--timeout", type=float, default=1200.0)
    p.add_argument("--label", default="", help="a word saved with the result (e.g. before, after)")
    p.add_argument("--compare-ovs", action="store_true",
                   help="run the lab twice: with Open vSwitch's defaults, then the lab's settings (MINET_LAB_OVS_TUNING=1)")
    args = p.parse_args(argv)
    check_root()
    from minet_sdn.topology.generate import class_topology
    report: Dict[str, Any] = {"command": " ".join(["bench/cpu_breakdown.py"] + (argv or sys.argv[1:])),
                              "machine": machine(), "label": args.label}
    with tempfile.TemporaryDirectory(prefix="minet-cpu-") as workdir:
        src = args.topology
        if not src:
            src = os.path.join(workdir, f"class{args.ases}.yaml")
            with open(src, "w") as fh:
                fh.write(class_topology(args.ases, servers=4, name=f"class{args.ases}"))
        if args.compare_ovs:             # the same lab twice: Open vSwitch's defaults, then the lab's settings
            report["results"] = {}
            for label, env in (("ovs-defaults", "0"), ("lab-settings", "1")):
                os.environ["MINET_LAB_OVS_TUNING"] = env
                print(f"## {label}", flush=True)
                report["results"][label] = run(unique_copy(src, workdir, "cb"), args)
                print(table(report["results"][label]), flush=True)
            report["result"] = report["results"]["lab-settings"]
        else:
            report["result"] = run(unique_copy(src, workdir, "cb"), args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cpu_breakdown-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    with open(out, "w") as fh:
        json.dump(report, fh, indent=1)
    if not args.compare_ovs:
        print(table(report["result"]))
    print(f"\nsaved {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
