#!/usr/bin/env python3
"""How long `minet lab up` takes, phase by phase, and `minet lab down`.

    sudo python3 bench/lab_up.py [--topology topologies/demo.yaml topologies/large.yaml]
                                 [--repeat 3] [--bgp-timeout 600] [--json]

Needs root, Open vSwitch, FRR and sshd (what `scripts/test.sh` installs). For every topology and
every repetition: the file is copied under a unique instance name (so a lab the user has up is never
touched), `lab_up` runs with a progress callback whose messages are timestamped as they arrive, then
`lab_down`; the run checks that nothing of the lab is left. The phases, from lab_up's own messages:

  servers       start -> last "server X: namespace ..., OvS, underlay, ssh" (networks, OvS, sshd)
  controller    -> "controller: pid ..." (controller listening on OpenFlow and REST)
  provisioning  -> "waiting for BGP" (`minet-provision --master` over SSH, every server in parallel);
                   per server: the duration minet-provision reports for it ("VMx: ok, N changes (T s")
  bgp           -> lab_up returns (every expected BGP session Established; lab_up polls once a second)
  total         lab_up's whole call
  routes        start -> every configured router has a route to every other configured AS's prefix
                (polled after lab_up returns, about once a second: sessions up is not routes spread)
  down          lab_down's whole call

Medians over the repetitions are printed (and min/max); everything is saved to
bench/results/lab_up-<date>.json. The machine's load is recorded too: the lab shares its cores
with whatever else runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from minet_sdn.lab import emulation as em   # noqa: E402
from minet_sdn.lab import lab as L          # noqa: E402
from minet_sdn.topology import load_topology  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_TOPOLOGIES = [str(ROOT / "topologies" / "demo.yaml"), str(ROOT / "topologies" / "large.yaml")]


# ---- shared with bench/failover.py --------------------------------------------------------------

def unique_copy(src: str, directory: str, prefix: str, **fabric: Any) -> str:
    """`src` under a unique 6-character instance name (its kernel tag is the name itself)."""
    with open(src) as fh:
        data = yaml.safe_load(fh)
    data["name"] = f"{prefix}{secrets.token_hex(3)}"[:6]
    if fabric:
        data.setdefault("fabric", {}).update(fabric)
    path = os.path.join(directory, f"{data['name']}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return path


def leftovers(topo) -> List[str]:
    """Anything of this lab still on the machine: namespaces with its tag, its state directory."""
    left = [ns for ns in os.listdir(em.NETNS_DIR) if ns.startswith(f"{topo.tag}-")] \
        if os.path.isdir(em.NETNS_DIR) else []
    if os.path.exists(em.state_dir(topo)):
        left.append(em.state_dir(topo))
    return left


def force_down(path: str) -> List[str]:
    """lab_down, then remove whatever lab.json still records (used in `finally`)."""
    topo = load_topology(path)
    problems: List[str] = []
    try:
        problems = L.lab_down(path, progress=lambda m: None)
    finally:
        if em.LabState.load(topo) is not None:
            with em.lab_lock(topo):
                problems += em.teardown(topo)
    return problems


def stats(values: List[float]) -> Dict[str, Optional[float]]:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def machine() -> Dict[str, Any]:
    def version(argv: List[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return "?"
        return (out.splitlines() or ["?"])[0].strip()
    return {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(), "python": platform.python_version(),
            "ovs": version(["ovs-vswitchd", "--version"]),
            "frr": version(["/usr/lib/frr/bgpd", "--version"])}


def save(kind: str, payload: Dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1)
    return path


def check_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, Open vSwitch, FRR)")
    try:
        em.check_host()
    except em.LabError as exc:
        raise SystemExit(str(exc))
    for path in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", shutil.which("vtysh") or "/nonexistent"):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing (apt-get install frr)")


def routes_complete(topo) -> bool:
    """Every configured router has a route to the prefix of every other configured AS."""
    from concurrent.futures import ThreadPoolExecutor
    from minet_sdn.topology.addressing import topology_addressing
    prefixes = {asn: a.prefix for asn, a in topology_addressing(topo).items() if topo.ases[asn].configure}

    def complete(router: str) -> bool:
        text = L.vtysh(L.router_place(topo, router), "show ip route json", timeout=20)
        try:
            have = set(json.loads(text or "{}"))
        except ValueError:
            return False
        asn = topo.routers[router].asn
        return all(p in have for a, p in prefixes.items() if a != asn)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return all(pool.map(complete, L.configured_routers(topo)))


# ---- one lab up / down, split by phase ------------------------------------------------------------

_PROVISIONED = re.compile(r"provision: (\S+): ok, (\d+) changes \(([\d.]+)s")


def phases(events: List[Tuple[float, str]], total: float) -> Dict[str, Any]:
    """Phase durations from lab_up's timestamped progress messages."""
    def last(pattern: str) -> Optional[float]:
        ts = [t for t, m in events if re.search(pattern, m)]
        return ts[-1] if ts else None
    servers = last(r"^server \S+: namespace")
    controller = last(r"^controller: pid")
    bgp_wait = last(r"^waiting for BGP on")
    per_server = {m.group(1): float(m.group(3)) for _, msg in events for m in [_PROVISIONED.search(msg)] if m}
    changes = {m.group(1): int(m.group(2)) for _, msg in events for m in [_PROVISIONED.search(msg)] if m}
    if None in (servers, controller, bgp_wait):
        raise RuntimeError(f"unexpected lab_up messages: {[m for _, m in events][:20]}")
    return {"servers": round(servers, 3), "controller": round(controller - servers, 3),
            "provisioning": round(bgp_wait - controller, 3), "bgp": round(total - bgp_wait, 3),
            "total": round(total, 3), "provision_per_server": per_server, "provision_changes": changes}


def one_run(src: str, workdir: str, bgp_timeout: float, verbose: bool) -> Dict[str, Any]:
    path = unique_copy(src, workdir, "bu")
    topo = load_topology(path)
    events: List[Tuple[float, str]] = []
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        events.append((time.monotonic() - t0, msg))
        if verbose:
            print(f"    [{events[-1][0]:6.2f}s] {msg}", flush=True)

    down = None
    try:
        summary = L.lab_up(path, progress=progress, bgp_timeout=bgp_timeout)
        total = time.monotonic() - t0
        result = phases(events, total)
        result["bgp_sessions"] = summary["bgp_sessions"]
        deadline = time.monotonic() + bgp_timeout
        while not routes_complete(topo):
            if time.monotonic() > deadline:
                raise RuntimeError(f"routes did not spread within {bgp_timeout:g} s")
            time.sleep(0.5)
        result["routes"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        problems = L.lab_down(path, progress=lambda m: None)
        down = time.monotonic() - t1
        if problems:
            raise RuntimeError(f"lab down reported problems: {problems}")
    finally:
        if down is None:
            force_down(path)
    left = leftovers(topo)
    if left:
        raise RuntimeError(f"lab down left {left}")
    result["down"] = round(down, 3)
    result["loadavg_after"] = os.getloadavg()[0]
    return result


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="time `minet lab up` by phase, and `lab down`")
    p.add_argument("--topology", nargs="+", default=DEFAULT_TOPOLOGIES)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bgp-timeout", type=float, default=600.0)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--verbose", action="store_true", help="print lab_up's progress messages")
    args = p.parse_args(argv)
    check_root()
    info = machine()
    print(f"# bench/lab_up.py on {info['cpus']} CPUs, load {info['loadavg'][0]:.2f}; {info['ovs']}; {info['frr']}",
          flush=True)
    report: Dict[str, Any] = {"command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv or sys.argv[1:])),
                              "machine": info, "topologies": {}}
    keys = ("servers", "controller", "provisioning", "bgp", "total", "routes", "down")
    with tempfile.TemporaryDirectory(prefix="minet-bench-") as workdir:
        for src in args.topology:
            topo = load_topology(src)
            size = (f"{len(topo.servers)} servers, {len(topo.ases)} ASes, {len(topo.routers)} routers, "
                    f"{len(topo.links)} links ({len(topo.remote_links)} remote)")
            print(f"## {os.path.relpath(src, ROOT)}: {size}", flush=True)
            runs = []
            for i in range(args.repeat):
                r = one_run(src, workdir, args.bgp_timeout, args.verbose)
                runs.append(r)
                print(f"  run {i + 1}: " + "  ".join(f"{k} {r[k]:.2f}s" for k in keys)
                      + f"  sessions {r['bgp_sessions']['established']}/{r['bgp_sessions']['expected']}"
                      + f"  per-server provisioning {r['provision_per_server']}", flush=True)
            summary = {k: stats([r[k] for r in runs]) for k in keys}
            servers = sorted({s for r in runs for s in r["provision_per_server"]})
            summary["provision_per_server"] = {s: stats([r["provision_per_server"].get(s) for r in runs])
                                               for s in servers}
            report["topologies"][os.path.relpath(src, ROOT)] = {"size": size, "runs": runs, "summary": summary}
    out = save("lab_up", report)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print()
        print("seconds: median [min-max] over the repetitions")
        print(f"{'topology':<24}" + "".join(f"{k:>20}" for k in keys))
        for name, t in report["topologies"].items():
            s = t["summary"]
            print(f"{name:<24}" + "".join(
                f"{s[k]['median']:.2f} [{s[k]['min']:.2f}-{s[k]['max']:.2f}]".rjust(20) for k in keys))
            print(f"{'':<24} provisioning per server (median): "
                  + ", ".join(f"{srv} {v['median']:.2f}s" for srv, v in s["provision_per_server"].items()))
    print(f"\nsaved {os.path.relpath(out, ROOT)}; reproduce: sudo python3 {report['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
