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

Class scale (`--class 10 20 40 60`): class-shaped topologies (minet_sdn/topology/generate.py, N ASes
x 8 routers, 4 servers), one run each by default, with more phases and figures:

  frr_start     the longest "FRR: ... started in T s" of the servers (inside provisioning)
  established   -> "BGP: all N sessions established" (inside bgp)
  routes        -> lab_up returns: it now waits for every route too
  memory        MemAvailable sampled every second: peak and steady (after convergence) drop against
                the value before the run; PSS of the lab's processes per daemon (/proc/PID/smaps_rollup)
  cpu           steady CPU of the lab's processes (namespaces with the lab's tag) over 30 s, after
                a 20 s settle, as a share of the whole machine; and the machine's own busy share
  second_up     a second lab_up with nothing changed (seconds; it must report already up)

Medians over the repetitions are printed (and min/max); everything is saved to
bench/results/lab_up-<date>.json. The machine's load is recorded too: the lab shares its cores
with whatever else runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from minet_sdn import host  # noqa: E402
from minet_sdn.lab import LabError, paths, quiet, servers  # noqa: E402
from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.lab import observe            # noqa: E402
from minet_sdn.topology import load_topology  # noqa: E402

import sampling  # noqa: E402  (bench/: what is measured on the machine)
from sampling import MemSampler, ksm_settle, machine  # noqa: E402  (bench/internet.py and others import MemSampler, machine from here)

RESULTS = ROOT / "bench" / "results"
DEFAULT_TOPOLOGIES = [str(ROOT / "topologies" / "demo.yaml"), str(ROOT / "topologies" / "large.yaml")]


# ---- shared with bench/failover.py --------------------------------------------------------------

def unique_copy(src: str, directory: str, prefix: str, **fabric: Any) -> str:
    """`src` under a unique 6-character instance name (its kernel tag is the name itself)."""
    return observe.write_variant(src, directory, prefix, name_len=6, hex_chars=6, **fabric)


def leftovers(topo) -> List[str]:
    """Anything of this lab still on the machine: namespaces with its tag, its state directory."""
    left = [ns for ns in os.listdir(host.NETNS_DIR) if ns.startswith(f"{topo.tag}-")] \
        if os.path.isdir(host.NETNS_DIR) else []
    if os.path.exists(paths.state_dir(topo)):
        left.append(paths.state_dir(topo))
    return left


def stats(values: List[float]) -> Dict[str, Optional[float]]:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


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
        servers.check_host()
    except LabError as exc:
        raise SystemExit(str(exc))
    for path in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", shutil.which("vtysh") or "/nonexistent"):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing (apt-get install frr)")


routes_complete = observe.routes_complete      # shared with the e2e tests (minet_sdn/lab/observe.py)


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


@contextmanager
def measured_lab(path: str, bgp_timeout: Optional[float], verbose: bool
                 ) -> Iterator[Tuple[Dict[str, Any], List[Tuple[float, str]], float]]:
    """`lab up` of `path` with every progress line timed; yields (phases, the timed lines, start).
    On the way out the lab is taken down, timed into phases["down"], and nothing of it may be left;
    it is removed whatever happens."""
    topo = load_topology(path)
    events: List[Tuple[float, str]] = []
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        events.append((time.monotonic() - t0, msg))
        if verbose:
            print(f"    [{events[-1][0]:6.2f}s] {msg}", flush=True)

    down = None
    try:
        summary = Lab(path, progress=progress).up(bgp_timeout=bgp_timeout)
        result = phases(events, time.monotonic() - t0)
        result["bgp_sessions"] = summary["bgp_sessions"]
        yield result, events, t0
        t1 = time.monotonic()
        problems = Lab(path, progress=lambda m: None).down()
        down = time.monotonic() - t1
        if problems:
            raise RuntimeError(f"lab down reported problems: {problems}")
    finally:
        if down is None:
            Lab(path, progress=quiet).remove()
    left = leftovers(topo)
    if left:
        raise RuntimeError(f"lab down left {left}")
    result["down"] = round(down, 3)


def one_run(src: str, workdir: str, bgp_timeout: float, verbose: bool) -> Dict[str, Any]:
    path = unique_copy(src, workdir, "bu")
    topo = load_topology(path)
    with measured_lab(path, bgp_timeout, verbose) as (result, _events, t0):
        deadline = time.monotonic() + bgp_timeout
        while not routes_complete(topo):
            if time.monotonic() > deadline:
                raise RuntimeError(f"routes did not spread within {bgp_timeout:g} s")
            time.sleep(0.5)
        result["routes"] = round(time.monotonic() - t0, 3)
    result["loadavg_after"] = os.getloadavg()[0]
    return result


# ---- class scale -----------------------------------------------------------------------------------

def lab_processes(tag: str, ns_prefix: str = "") -> Dict[int, str]:
    """pid -> comm of every process inside a namespace of the lab (name starts with the tag; with
    `ns_prefix`, only the namespaces `<tag>-<ns_prefix>...`, e.g. "l2-": the layer-2 instances)."""
    idents = {}
    for name in os.listdir(host.NETNS_DIR):
        if name.startswith(f"{tag}-{ns_prefix}"):
            st = os.stat(os.path.join(host.NETNS_DIR, name))
            idents[(st.st_dev, st.st_ino)] = name
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
            if (st.st_dev, st.st_ino) in idents:
                with open(f"/proc/{entry}/comm") as fh:
                    out[int(entry)] = fh.read().strip()
        except OSError:
            pass
    return out


def pss_by_daemon(tag: str, ns_prefix: str = "") -> Dict[str, Dict[str, float]]:
    """{comm: {"n", "pss_mb" (average), "rss_mb" (average), "total_mb"}} over the lab's processes."""
    return sampling.pss_by_comm(lab_processes(tag, ns_prefix))


def cpu_share(tag: str, seconds: float, ns_prefix: str = "") -> Dict[str, Any]:
    """CPU of the lab's processes over `seconds`, as % of the whole machine, and the machine's busy %.
    ksmd counts with the whole lab (the kernel's page merging works for the lab only), not with a
    part of it (`ns_prefix`)."""
    got = sampling.cpu_share(lambda: lab_processes(tag, ns_prefix), seconds, with_ksmd=not ns_prefix)
    return {"lab_pct": round(got["pct"], 1), "machine_pct": got["machine_pct"], "by_process": got["by_process"]}


_FRR_DONE = re.compile(r"FRR: \d+/\d+ routers, \d+/\d+ daemons started in ([\d.]+) s")


def class_run(n_ases: int, workdir: str, bgp_timeout: Optional[float], verbose: bool,
              settle: float, cpu_seconds: float, layer2: bool = False) -> Dict[str, Any]:
    from minet_sdn.topology.generate import class_topology
    src = os.path.join(workdir, f"class{n_ases}.yaml")
    with open(src, "w") as fh:
        fh.write(class_topology(n_ases, servers=4, name=f"class{n_ases}", layer2=layer2))
    path = unique_copy(src, workdir, "cl")
    topo = load_topology(path)
    mem = MemSampler()
    try:
        with measured_lab(path, bgp_timeout, verbose) as (result, events, _t0):
            _class_figures(topo, path, result, events, mem, bgp_timeout, settle, cpu_seconds)
    finally:
        mem.stop()
    return result


def _class_figures(topo, path: str, result: Dict[str, Any], events: List[Tuple[float, str]], mem: "MemSampler",
                   bgp_timeout: Optional[float], settle: float, cpu_seconds: float) -> None:
    """What the class table shows of a lab that is up: phases, memory, CPU, PSS, a second `up`."""
    total = result["total"]
    result["frr_start"] = max((float(m.group(1)) for _, msg in events for m in [_FRR_DONE.search(msg)] if m),
                              default=None)
    est = [t for t, msg in events if msg.startswith("BGP: all ")]
    bgp_wait = total - result["bgp"]
    result["established"] = round(est[-1] - bgp_wait, 3) if est else None
    result["routes"] = round(total, 3)
    result["routers"] = len(topo.routers)
    result["memory_peak_mb"] = round(mem.peak(), 1)
    time.sleep(settle)
    result["cpu"] = cpu_share(topo.tag, cpu_seconds)
    result["memory_steady_mb"] = round(mem.now(), 1)
    pss = pss_by_daemon(topo.tag)
    merge = ksm_settle()
    if merge is not None:        # pages shared by KSM: the steady state is after merging settles
        result["ksm"] = merge
        result["pss_before_merge"] = pss
        result["pss_per_router_before_merge_mb"] = round(sum(
            v["total_mb"] for c, v in pss.items() if c in ("zebra", "bgpd", "ospfd", "staticd", "ospf6d"))
            / len(topo.routers), 2)
        result["cpu"] = cpu_share(topo.tag, cpu_seconds)
        result["memory_steady_mb"] = round(mem.now(), 1)
        pss = pss_by_daemon(topo.tag)
    result["pss"] = pss
    frr_total = sum(v["total_mb"] for c, v in pss.items() if c in ("zebra", "bgpd", "ospfd", "staticd"))
    result["pss_per_router_mb"] = round(frr_total / len(topo.routers), 2)     # the IPv4 daemons
    result["pss_ospf6d_per_router_mb"] = round(pss.get("ospf6d", {}).get("total_mb", 0.0) / len(topo.routers), 2)
    result["memory_per_router_mb"] = round(result["memory_steady_mb"] / len(topo.routers), 2)
    switches = sum(len(a.layer2.switches) for a in topo.ases.values() if a.layer2 is not None)
    if switches:                 # the layer-2 instances alone (namespaces <tag>-l2-<asn>): cost per switch
        l2cpu = cpu_share(topo.tag, cpu_seconds, "l2-")
        l2pss = pss_by_daemon(topo.tag, "l2-")
        cores = os.cpu_count() or 1
        result["layer2"] = {
            "switches": switches, "hosts": sum(1 for a in topo.ases.values() if a.layer2 for h in a.layer2.hosts if not h.vpn),
            "instances": sum(1 for a in topo.ases.values() if a.layer2 is not None),
            "cpu": l2cpu, "pss": l2pss,
            "cpu_pct_of_one_core_per_switch": round(l2cpu["lab_pct"] * cores / switches, 3),
            "pss_mb_per_switch": round(sum(v["total_mb"] for v in l2pss.values()) / switches, 2)}
    t1 = time.monotonic()
    again = Lab(path, progress=lambda m: None).up(bgp_timeout=bgp_timeout)
    result["second_up"] = round(time.monotonic() - t1, 3)
    result["second_up_already"] = again["already_up"]


def class_table(runs: Dict[int, Dict[str, Any]]) -> str:
    head = ("| ASes x 8 | routers | servers | controller | provisioning (FRR start) | BGP established | all routes "
            "= `lab up` | steady CPU (lab / machine) | memory peak / steady | PSS per router (+ ospf6d) | memory per router "
            "| second up | down |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for n, r in sorted(runs.items()):
        out.append(f"| {n} | {r['routers']} | {r['servers']:.1f} | {r['controller']:.1f} | {r['provisioning']:.1f} "
                   f"({r['frr_start'] or 0:.1f}) | {r['established'] or 0:.1f} | **{r['routes']:.1f}** | "
                   f"{r['cpu']['lab_pct']:.1f} % / {r['cpu']['machine_pct']:.1f} % | "
                   f"{r['memory_peak_mb'] / 1024:.2f} / {r['memory_steady_mb'] / 1024:.2f} GiB | "
                   f"{r['pss_per_router_mb']:.1f} (+ {r.get('pss_ospf6d_per_router_mb', 0.0):.1f}) MB | "
                   f"{r['memory_per_router_mb']:.1f} MB | "
                   f"{r['second_up']:.1f} s | {r['down']:.1f} s |")
    return "\n".join(out)


def class_plot(runs: Dict[int, Dict[str, Any]], path: Path) -> Optional[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ns = sorted(runs)
    routers = [runs[n]["routers"] for n in ns]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    bottom = [0.0] * len(ns)
    for key, label in (("servers", "servers"), ("controller", "controller"), ("provisioning", "provisioning"),
                       ("bgp", "BGP + routes")):
        vals = [runs[n][key] for n in ns]
        a1.bar([str(r) for r in routers], vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a1.axhline(600, color="red", linestyle="--", linewidth=1, label="10 min")
    a1.set_xlabel("routers (ASes x 8, 4 servers)")
    a1.set_ylabel("seconds")
    a1.set_title("lab up by phase")
    a1.legend(fontsize=8)
    a2.plot(routers, [runs[n]["pss_per_router_mb"] for n in ns], "o-", label="PSS per router: zebra, bgpd, ospfd (staticd) (MB)")
    a2.plot(routers, [runs[n]["pss_per_router_mb"] + runs[n].get("pss_ospf6d_per_router_mb", 0.0) for n in ns], "o--",
            label="... + ospf6d (MB)")
    a2.plot(routers, [runs[n]["memory_per_router_mb"] for n in ns], "s-", label="MemAvailable drop per router (MB)")
    a2.plot(routers, [runs[n]["cpu"]["lab_pct"] for n in ns], "^-", label="steady lab CPU (% of machine)")
    a2.set_xlabel("routers")
    a2.set_title("per-router cost and steady CPU")
    a2.set_ylim(bottom=0)
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def class_main(args) -> int:
    info = machine()
    print(f"# bench/lab_up.py --class on {info['cpus']} CPUs, load {info['loadavg'][0]:.2f}; {info['frr']}", flush=True)
    report: Dict[str, Any] = {"command": " ".join(["bench/lab_up.py"] + sys.argv[1:]), "machine": info, "class": {}}
    runs: Dict[int, Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="minet-bench-") as workdir:
        for n in args.classes:
            print(f"## class {n} x 8: {n * 8} routers over 4 servers", flush=True)
            r = class_run(n, workdir, args.bgp_timeout if args.bgp_timeout != 600.0 else None, args.verbose,
                          args.settle, args.cpu_seconds, args.layer2)
            runs[n] = r
            report["class"][str(n)] = r
            print(f"  up {r['routes']:.1f}s (servers {r['servers']:.1f}, controller {r['controller']:.1f}, provisioning "
                  f"{r['provisioning']:.1f} with FRR start {r['frr_start']}, established {r['established']}, routes "
                  f"{r['bgp']:.1f}); CPU {r['cpu']}; memory peak {r['memory_peak_mb']:.0f} MB steady "
                  f"{r['memory_steady_mb']:.0f} MB; PSS/router {r['pss_per_router_mb']} MB; PSS {r['pss']}; "
                  f"second up {r['second_up']:.1f}s; down {r['down']:.1f}s", flush=True)
            if "layer2" in r:
                l2 = r["layer2"]
                print(f"  layer 2: {l2['switches']} switches in {l2['instances']} OvS instances, {l2['hosts']} hosts; "
                      f"steady CPU {l2['cpu']['lab_pct']:.1f} % of the machine = "
                      f"{l2['cpu_pct_of_one_core_per_switch']:.3f} % of one core per switch; "
                      f"PSS {l2['pss_mb_per_switch']:.2f} MB per switch", flush=True)
            save("lab_up_class", report)
    out = save("lab_up_class", report)
    print()
    print(class_table(runs))
    png = class_plot(runs, RESULTS / "lab_up_class.png")
    print(f"\nsaved {os.path.relpath(out, ROOT)}" + (f" and {os.path.relpath(png, ROOT)}" if png else ""))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="time `minet lab up` by phase, and `lab down`")
    p.add_argument("--topology", nargs="+", default=DEFAULT_TOPOLOGIES)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bgp-timeout", type=float, default=600.0)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--verbose", action="store_true", help="print lab_up's progress messages")
    p.add_argument("--class", dest="classes", type=int, nargs="+", metavar="N",
                   help="class-shaped topologies of N ASes x 8 routers on 4 servers instead (e.g. 10 20 40 60)")
    p.add_argument("--settle", type=float, default=20.0, help="--class: seconds after up before CPU is measured")
    p.add_argument("--cpu-seconds", type=float, default=30.0, help="--class: CPU measurement window")
    p.add_argument("--layer2", action="store_true",
                   help="--class: every AS with the current layout's layer 2 (4 switches, 8 hosts; "
                        "`minet generate class --layer2`), and its cost per switch")
    args = p.parse_args(argv)
    check_root()
    if args.classes:
        return class_main(args)
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
