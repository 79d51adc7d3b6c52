#!/usr/bin/env python3
"""Live A/B of steady-CPU settings on a lab that is up: one setting changed at a time, the lab's CPU
and wake-ups per process kind sampled after each (bench/cpu_breakdown.py measures one whole lab).

    sudo python3 bench/cpu_live_ab.py measure LAB LABEL SECONDS   # CPU % of the machine, wake-ups/s each
    sudo python3 bench/cpu_live_ab.py ovs LAB KEY=VALUE...         # other_config of every server's OvS
    sudo python3 bench/cpu_live_ab.py ebgp LAB KEEPALIVE HOLD      # timers bgp on every configured router, sessions reset
    sudo python3 bench/cpu_live_ab.py hello LAB SECONDS            # OSPF/OSPFv3 hello-interval on every ring link
    sudo python3 bench/cpu_live_ab.py count LAB                    # BGP sessions Established

LAB is the lab's name (its namespaces start with it). The sequence used for docs/scale.md (Steady
CPU), on a 10 x 8 class lab brought up by the code before the cuts (`minet generate class --ases 10
--servers 4 --name sc10`, `minet lab up`): measure base; ovs stats-update-interval=30000
max-revalidator=2000 max-idle=60000 n-handler-threads=1 n-revalidator-threads=1; ebgp 10 30; echo 100
> /sys/kernel/mm/ksm/pages_to_scan; hello 10; measuring 15 s after each. Result:
bench/results/cpu_live_ab-20261208.txt.
"""
from __future__ import annotations

import collections
import glob
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lab_up import lab_processes  # noqa: E402
from sampling import ksmd_ticks  # noqa: E402


def _sample(tag: str):
    out = {}
    for pid, comm in lab_processes(tag).items():
        try:
            with open(f"/proc/{pid}/stat") as fh:
                f = fh.read().rsplit(") ", 1)[1].split()
            woke = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as fh:
                    woke += next(int(l.split()[1]) for l in fh if l.startswith("voluntary_ctxt_switches:"))
            out[pid] = (comm, int(f[11]) + int(f[12]), woke)
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    k = ksmd_ticks()
    if k is not None:
        out[0] = ("ksmd", k, 0)
    return out


def measure(tag: str, label: str, seconds: float) -> None:
    def busy():
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:9]]
    m0, a, t0 = busy(), _sample(tag), time.monotonic()
    time.sleep(seconds)
    m1, b, dt = busy(), _sample(tag), time.monotonic() - t0
    d = [y - x for x, y in zip(m0, m1)]
    hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    agg = collections.defaultdict(lambda: [0, 0, 0])
    for pid, (comm, ticks, woke) in b.items():
        if pid in a:
            g = agg[comm]
            g[0] += 1
            g[1] += ticks - a[pid][1]
            g[2] += woke - a[pid][2]
    kinds = {c: {"n": n, "pct": round(t / hz / dt / ncpu * 100, 2), "wake_per_s": round(w / dt / n, 2)}
             for c, (n, t, w) in agg.items()}
    print(json.dumps({"label": label, "seconds": round(dt, 1), "lab_pct": round(sum(k["pct"] for k in kinds.values()), 2),
                      "machine_pct": round(100 * (sum(d) - d[3] - d[4]) / max(1, sum(d)), 1), "load": os.getloadavg()[0],
                      "by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["pct"]))}), flush=True)


def _routers(lab: str):
    for d in sorted(glob.glob(f"/run/minet-sdn/{lab}/*/provision/{lab}/*/frr/*/")):
        with open(d + "frr.conf") as fh:
            conf = fh.read()
        if "router bgp" in conf:
            yield d, conf


def _vtysh(d: str, *cmds: str) -> subprocess.CompletedProcess:
    argv = ["vtysh", "--vty_socket", d, "--config_dir", d]
    for c in cmds:
        argv += ["-c", c]
    return subprocess.run(argv, capture_output=True, text=True)


def main(argv) -> int:
    what, lab, rest = argv[0], argv[1], argv[2:]
    if what == "measure":
        measure(lab, rest[0], float(rest[1]))
    elif what == "ovs":
        for sock in sorted(glob.glob(f"/run/minet-sdn/{lab}/VM*/db.sock")):
            subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--timeout=20", "set", "Open_vSwitch", ".",
                            *[f"other_config:{kv}" for kv in rest]], check=True)
    elif what == "hello":
        for d, conf in _routers(lab):
            cmds = ["conf t"]
            for m in re.finditer(r"^interface (\S+)\n((?: .*\n)*)", conf, re.M):
                if "hello-interval" in m.group(2):
                    cmds += [f"interface {m.group(1)}", f"ip ospf hello-interval {rest[0]}",
                             f"ipv6 ospf6 hello-interval {rest[0]}", "exit"]
            _vtysh(d, *cmds)
    elif what == "ebgp":
        for d, conf in _routers(lab):
            asn = re.search(r"^router bgp (\d+)", conf, re.M).group(1)
            _vtysh(d, "conf t", f"router bgp {asn}", f"timers bgp {rest[0]} {rest[1]}", "end", "clear bgp *")
    elif what == "count":
        n = 0
        for d, _ in _routers(lab):
            with_json = _vtysh(d, "show bgp summary json").stdout
            try:
                for fam in json.loads(with_json).values():
                    n += sum(p.get("state") == "Established" for p in fam.get("peers", {}).values())
            except ValueError:
                pass
        print("established", n)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
