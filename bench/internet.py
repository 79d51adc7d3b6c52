#!/usr/bin/env python3
"""An Internet of N ASes from an AS-relationship file: up, converged, and valley-free checked.

    sudo python3 bench/internet.py [--ases 1000] [--servers 4] [--seed 1] [--bgp-timeout 1200]
                                   [--settle 20] [--cpu-seconds 30] [--as-rel FILE]

Steps, each timed: the fixture (bench/gen_as_rel.py, --ases x 1.5 ASes so the selection has room;
or --as-rel FILE), `minet import as-rel FILE --ases N --servers S` (one router per AS, the core by
customer cone), `lab up` through bench/lab_up.py (phases, every route; memory peak/steady, PSS per
daemon, steady CPU per process kind), then one round of the connectivity matrix (`minet matrix`,
watch/matrix.run_matrix) compared with the policies' model (topology/policy.expected_pairs,
watch/matrix.check_policy): every pair the model says reaches must answer, and no pair it forbids
may. The lab is removed at the end. Results: bench/results/internet-<date>.json.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gen_as_rel import generate  # noqa: E402
from lab_up import MemSampler, check_root, cpu_share, machine, measured_lab, pss_by_daemon, save  # noqa: E402

from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.topology import load_topology  # noqa: E402
from minet_sdn.topology.policy import expected_pairs  # noqa: E402
from minet_sdn.watch import matrix as M  # noqa: E402


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description="an Internet of N ASes, up, converged and valley-free checked")
    p.add_argument("--ases", type=int, default=1000)
    p.add_argument("--servers", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--as-rel", help="an AS-relationship file (default: one from bench/gen_as_rel.py)")
    p.add_argument("--bgp-timeout", type=float, default=1200.0)
    p.add_argument("--settle", type=float, default=20.0)
    p.add_argument("--cpu-seconds", type=float, default=30.0)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    check_root()
    report: Dict[str, Any] = {"command": " ".join(["bench/internet.py"] + (argv or sys.argv[1:])),
                              "machine": machine()}
    r: Dict[str, Any] = report.setdefault("result", {})
    with tempfile.TemporaryDirectory(prefix="minet-inet-") as workdir:
        rel = args.as_rel
        if not rel:
            rel = os.path.join(workdir, "as-rel.txt")
            with open(rel, "w") as fh:
                fh.write(generate(int(args.ases * 1.5), seed=args.seed))
        topo_path = os.path.join(workdir, "internet.yaml")
        name = f"in{os.getpid() % 10000:04d}"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "import", "as-rel", rel, "--ases", str(args.ases),
                        "--servers", str(args.servers), "--name", name, "-o", topo_path], check=True, cwd=str(ROOT))
        r["import_s"] = round(time.monotonic() - t0, 1)
        topo = load_topology(topo_path)
        r.update(ases=len(topo.ases), routers=len(topo.routers), links=len(topo.links),
                 remote_links=len(topo.remote_links))
        print(f"# {r['ases']} ASes, {r['routers']} routers, {r['links']} links ({r['remote_links']} remote), "
              f"import {r['import_s']} s", flush=True)
        mem = MemSampler()
        try:
            with measured_lab(topo_path, args.bgp_timeout, args.verbose) as (phases, _events, _t0):
                r["phases"] = phases
                r["memory_peak_mb"] = round(mem.peak(), 1)
                time.sleep(args.settle)
                r["cpu"] = cpu_share(topo.tag, args.cpu_seconds)
                r["memory_steady_mb"] = round(mem.now(), 1)
                r["pss"] = pss_by_daemon(topo.tag)
                t1 = time.monotonic()
                m = M.run_matrix(Lab(topo_path).places())
                r["matrix_s"] = round(time.monotonic() - t1, 1)
                check = M.check_policy(m, expected_pairs(topo))
                r["policy"] = {"checked": check.checked, "ok": check.ok, "answered": m.ok_count,
                               "missing": len(check.missing), "leaked": len(check.leaked),
                               "unprobed": check.unprobed[:20], "missing_first": check.missing[:20],
                               "leaked_first": check.leaked[:20]}
        finally:
            mem.stop()
    out = save("internet", report)
    print(f"up {r['phases']['total']:.1f} s (servers {r['phases']['servers']:.1f}, provisioning "
          f"{r['phases']['provisioning']:.1f}, BGP and routes {r['phases']['bgp']:.1f}); down {r['phases']['down']:.1f} s; "
          f"memory peak {r['memory_peak_mb'] / 1024:.2f} GiB, steady {r['memory_steady_mb'] / 1024:.2f} GiB; "
          f"CPU {r['cpu']['lab_pct']} % ({r['cpu']['by_process']}); matrix {r['matrix_s']} s: {r['policy']}")
    print(f"saved {os.path.relpath(out, ROOT)}")
    return 0 if r["policy"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
