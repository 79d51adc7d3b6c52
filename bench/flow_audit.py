#!/usr/bin/env python3
"""What the controller's flow-table audit costs Open vSwitch, at N remote links on one bridge.

    python3 bench/flow_audit.py [--links 1000 10000] [--repeat 20]

Needs root and Open vSwitch. The audit (core/fabric.py, every AUDIT_INTERVAL s per bridge) is one
OpenFlow aggregate stats request and its 40-byte reply; the controller's side is constant, OvS walks
its table to count. Measured here on a private OvS in a fresh namespace, the bridge holding the
flows of N links (as bench/flow_sync.py makes them), through ovs-ofctl for both sides so process
start-up is the same: `dump-aggregate` (the audit) against `--no-stats dump-flows` (the reference:
what every resync reads, and what a naive audit would read). Reported per N: medians of wall time
and of ovs-vswitchd CPU per call, their ratios (audit / reference), and the CPU share of one core
the audit takes at AUDIT_INTERVAL.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flow_sync import Ovs, ofctl_flow, run, topology_yaml  # noqa: E402
from minet_sdn.core.fabric import AUDIT_INTERVAL              # noqa: E402
from minet_sdn.core.flows import bridge_flows                 # noqa: E402
from minet_sdn.topology import load_topology                  # noqa: E402


def measure(ovs: Ovs, argv, repeat: int):
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = ovs.vswitchd_cpu(), time.perf_counter()
        run(*argv)
        walls.append(time.perf_counter() - t0)
        cpus.append(ovs.vswitchd_cpu() - c0)
    return statistics.median(walls), statistics.mean(cpus)


def bench(n: int, repeat: int, work: Path) -> dict:
    topo_path = work / f"topo-{n}.yaml"
    topo_path.write_text(topology_yaml(n, "key"))
    topo = load_topology(str(topo_path))
    b = next(b for b in topo.bridges.values() if b.server == "VM1")
    flows = bridge_flows(topo, b, [topo.link(lid).ofport for lid in b.link_ids])
    flow_file = work / f"flows-{n}.txt"
    flow_file.write_text("".join(ofctl_flow(f) + "\n" for f in flows.values()))
    ovs = Ovs(f"mnaudit-{os.getpid()}-{n}", work / f"ovs-{n}")
    try:
        ovs.start()
        ovs.vsctl("add-br", b.name, "--", "set", "bridge", b.name, "datapath_type=netdev", "fail_mode=secure",
                  "protocols=OpenFlow13")
        run("ovs-ofctl", "-O", "OpenFlow13", "add-flows", ovs.mgmt(b.name), str(flow_file))
        assert ovs.flow_count(b.name) == len(flows)
        ofctl = ("ovs-ofctl", "-O", "OpenFlow13")
        audit = measure(ovs, ofctl + ("dump-aggregate", ovs.mgmt(b.name)), repeat)
        ref = measure(ovs, ofctl + ("--no-stats", "dump-flows", ovs.mgmt(b.name)), repeat)
    finally:
        ovs.stop()
    return {"links": n, "flows": len(flows), "audit_wall_s": audit[0], "read_wall_s": ref[0],
            "wall_ratio": audit[0] / ref[0], "audit_cpu_s": audit[1], "read_cpu_s": ref[1],
            "cpu_ratio": audit[1] / ref[1] if ref[1] else float("nan"),
            "audit_core_share": audit[1] / AUDIT_INTERVAL}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--links", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mnaudit-") as d:
        print(f"{'links':>6} {'flows':>6} {'audit ms':>9} {'read ms':>8} {'wall x':>7} "
              f"{'audit cpu ms':>12} {'read cpu ms':>11} {'cpu x':>6} {'share@5s':>9}")
        for n in args.links:
            r = bench(n, args.repeat, Path(d))
            print(f"{r['links']:>6} {r['flows']:>6} {1e3 * r['audit_wall_s']:>9.1f} {1e3 * r['read_wall_s']:>8.1f} "
                  f"{r['wall_ratio']:>7.2f} {1e3 * r['audit_cpu_s']:>12.2f} {1e3 * r['read_cpu_s']:>11.2f} "
                  f"{r['cpu_ratio']:>6.2f} {100 * r['audit_core_share']:>8.3f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
