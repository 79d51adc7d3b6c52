#!/usr/bin/env python3
"""Does link shaping hold? iperf3 (TCP, one stream) through shaped intra-AS, local and remote links.

    sudo python3 bench/shaping.py [--seconds 8] [--json]

Needs root, Open vSwitch, FRR, sshd, iperf3. Brings up a small lab on two emulated servers
(everything through the real path: `lab up`, minet-provision over SSH, the controller for the
remote link), with

    intra-AS   1.A -- 1.B     40mbit          (both ends on VM1)
    local      1.A -- 2.X     30mbit  buf 64kb  (inter-AS, both ends on VM1)
    remote     1.B -- 3.Y     25mbit          (inter-AS, VM1 -- VM2 over GRE)
    reference  2.X -- 3.Y     unshaped remote (what the path gives without shaping, same run)

then runs iperf3 between the link's two router addresses (traffic stays inside the lab's
namespaces) and reports received throughput against the configured rate. The lab is removed
afterwards. Results go to bench/results/shaping-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minet_sdn.importers import to_yaml                      # noqa: E402
from minet_sdn.lab import places  # noqa: E402
from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.topology import load_topology, names           # noqa: E402
from minet_sdn.topology.addressing import topology_addressing  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from lab_up import machine                                    # noqa: E402

RESULTS = ROOT / "bench" / "results"


def topology(name: str) -> dict:
    return {
        "name": name,
        "servers": ["VM1", "VM2"],
        "ases": {1: {"server": "VM1", "routers": ["A", "B"], "links": [{"a": "A", "b": "B", "throughput": "40mbit"}]},
                 2: {"server": "VM1", "routers": ["X"]},
                 3: {"server": "VM2", "routers": ["Y"]}},
        "links": [{"a": "1.A", "b": "2.X", "rel": "peer", "throughput": "30mbit", "buffer": "64kb"},
                  {"a": "1.B", "b": "3.Y", "rel": "peer", "throughput": "25mbit"},
                  {"a": "2.X", "b": "3.Y", "rel": "peer"}],
    }


def ns_of(topo, node: str) -> str:
    ns, _, _ = places.resolve_node(topo, node)
    return ns


def iperf(topo, client: str, server: str, server_ip: str, seconds: float) -> float:
    """Received bits/s of one TCP stream from `client` to `server_ip` (a router address of `server`)."""
    srv = subprocess.Popen(names.exec_prefix("netns", ns_of(topo, server)) + ["iperf3", "-s", "-1", "-B", server_ip,
                            "-p", "5299"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        res = subprocess.run(names.exec_prefix("netns", ns_of(topo, client)) + ["iperf3", "-c", server_ip, "-p", "5299",
                              "-t", str(seconds), "-O", "1", "-J"], capture_output=True, text=True,
                             timeout=seconds + 30)
        data = json.loads(res.stdout)
        return float(data["end"]["sum_received"]["bits_per_second"])
    finally:
        srv.kill()
        srv.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    name = f"sh{secrets.token_hex(2)}"
    tmp = tempfile.mkdtemp(prefix="minet-shaping-")
    path = os.path.join(tmp, "shaping.yaml")
    with open(path, "w") as fh:
        fh.write(to_yaml(topology(name)))
    topo = load_topology(path)
    addressing = topology_addressing(topo)
    ab = addressing[1].links[0]
    cases = [  # (what, configured bit/s, client, server, server ip)
        ("intra-AS 1.A-1.B", 40e6, "1.A", "1.B", ab.b_ip),
        ("local inter-AS link 1", 30e6, "1.A", "2.X", topo.link(1).b.ip),
        ("remote inter-AS link 2", 25e6, "1.B", "3.Y", topo.link(2).b.ip),
        ("remote unshaped link 3 (reference)", None, "2.X", "3.Y", topo.link(3).b.ip),
    ]
    rows = []
    try:
        Lab(path, progress=lambda m: print(m, file=sys.stderr, flush=True)).up()
        for what, rate, client, server, ip in cases:
            got = iperf(topo, client, server, ip, args.seconds)
            rows.append({"link": what, "configured_bps": rate, "measured_bps": got,
                         "ratio": None if rate is None else got / rate})
    finally:
        Lab(path, progress=lambda m: None).down()
    doc = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python3 bench/shaping.py"] + sys.argv[1:]), "machine": machine(),
           "seconds": args.seconds, "load": os.getloadavg(), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"shaping-{datetime.date.today()}.json"
    out.write_text(json.dumps(doc, indent=1))
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(f"{'link':<36} {'configured':>11} {'measured':>11} {'ratio':>6}")
        for r in rows:
            conf = "-" if r["configured_bps"] is None else f"{r['configured_bps'] / 1e6:.1f} Mbit/s"
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
            print(f"{r['link']:<36} {conf:>11} {r['measured_bps'] / 1e6:>6.1f} Mbit/s {ratio:>6}")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
