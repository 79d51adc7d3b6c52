#!/usr/bin/env python3
"""minet vs IPMininet: the same class-shaped Internet run through both tools, in one run.

    sudo python3 bench/versus_ipmininet.py [--ases 10 20 40 60] [--peer-timers matched|default]
                                           [--peer-python /work/venv/peer/bin/python]
                                           [--settle 20] [--cpu-seconds 30] [--timeout 900] [--only minet|peer]

Needs root, Open vSwitch, FRR, sshd (for minet) and, for the peer, a separate virtualenv holding
IPMininet 1.0 and Mininet 2.3.0.dev6 (never a dependency of minet-sdn; see docs/benchmarks.md for how
it was installed: the mininet wheel, IPMininet's sdist unpacked into the venv, `mako<1.2`, and
Mininet's `mnexec` compiled into the venv's bin/). The peer runs in a child process of that venv
(`--peer-child SPEC`), so the two tools never share an interpreter.

The topology: `minet generate class --ases N` (N ASes x 8 routers, 4 emulated servers for minet),
every AS configured (no student ASes), IPv4 only (both tools; the peer's IPv6 would add OSPFv3 and
an address plan of its own). The peer gets exactly the same graph, taken from minet's loaded
topology: per AS the 8 routers in a ring (OSPF), two route reflectors (the 1st and 5th router, as
minet configures them) with the other six as clients of both, every inter-AS link an eBGP session
with IPMininet's own customer/peer/provider policy (`ebgp_session(..., CLIENT_PROVIDER|SHARE)`:
local preference 200/150/100 and valley-free export by communities), a host on every router, every
router announcing its AS prefix (minet: `network` kept by a blackhole route; the peer: `network`
with `no bgp network import-check`, as IPMininet has no blackhole route of its own).

Timers: minet runs its defaults. `--peer-timers matched` (default) gives the peer minet's timers
(OSPF hello 4 / dead 40 on point-to-point ring links, BGP keepalive 10 / hold 30, eBGP and iBGP);
`default` keeps IPMininet's (OSPF broadcast links with hello 1 s and dead interval "minimal
hello-multiplier 5", BGP 60 / 180).

The same start and the same end for both tools. Start: the call that builds the network (minet:
`Lab.up`; the peer: `IPNet(topo=...)` then `net.start()`). Converged: every router has a route to the
AS prefix of every other AS in its IPv4 table (`show ip route json`, exact prefix), polled about once
a second with 8 routers asked at once (minet's `lab up` polls this way and returns when it holds).

Figures per tool and size:
  converge        seconds from the start to converged
  memory          MemAvailable drop against the value before the start, sampled every second: peak
                  (start to converged) and steady (after --settle, and for minet after kernel page
                  merging settles: minet opts its FRR into KSM, the peer does not)
  pss             PSS of the FRR daemons (zebra, bgpd, ospfd; /proc/PID/smaps_rollup) at steady
                  state, total and per router: the routers' own memory, shared pages counted once
  cpu             over --cpu-seconds at steady state, the tool's processes (minet: every process in
                  the lab's namespaces, i.e. FRR, Open vSwitch, sshd, plus the controller/relay
                  processes and ksmd; the peer: every descendant of its child process, i.e. FRR,
                  the nodes' shells, plus ksmd) as % of the whole machine, and the machine's busy %
  teardown        seconds of `lab down` / `net.stop()`

Results: bench/results/versus-ipmininet-<date>.json, a Markdown table, and with --plot a PNG
(matplotlib) or SVG. The machine is shared: CPU figures move with everything else it runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FRR_DAEMONS = ("zebra", "bgpd", "ospfd", "staticd", "ospf6d")
PEER_PYTHON = "/work/venv/peer/bin/python"
# minet's class timers (docs/scale.md#timers), given to the peer with --peer-timers matched
MATCHED = {"ospf_hello": 4, "ospf_dead": 40, "ebgp": (10, 30), "ibgp": (10, 30)}   # minet_sdn/provision/frr.py


# ---- measuring, shared by both sides (no minet import: the peer's venv runs this too) ------------

sys.path.insert(0, str(ROOT / "bench"))
import sampling  # noqa: E402  (standard library only)
from sampling import MemSampler, cpu_share, machine  # noqa: E402

def _comm(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None


def descendants(root: int) -> Dict[int, str]:
    """pid -> comm of every live descendant of `root`."""
    parent: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    rest = fh.read().rsplit(") ", 1)[1].split()
                if rest[0] != "Z":
                    parent[int(entry)] = int(rest[1])
            except (OSError, IndexError, ValueError):
                pass
    out: Dict[int, str] = {}
    frontier = {root}
    while frontier:
        nxt = {p for p, pp in parent.items() if pp in frontier and p not in out}
        for p in nxt:
            c = _comm(p)
            if c is not None:
                out[p] = c
        frontier = nxt
    return out


def frr_pss(pids: Dict[int, str]) -> Dict[str, Dict[str, float]]:
    """{daemon: {n, total_mb, ...}} PSS of the FRR daemons among `pids` (sampling.pss_by_comm)."""
    return sampling.pss_by_comm(pids, only=FRR_DAEMONS)


def routes_complete(routers: Dict[str, Tuple[int, Callable[[], Optional[str]]]],
                    prefixes: Dict[int, str], workers: int = 8) -> bool:
    """Every router (name -> (its ASN, a reader of `show ip route json`)) has every other AS's prefix."""
    def ok(item: Tuple[str, Tuple[int, Callable[[], Optional[str]]]]) -> bool:
        asn, read = item[1]
        text = read()
        try:
            table = json.loads(text) if text else None
        except ValueError:
            return False
        return isinstance(table, dict) and all(p in table for a, p in prefixes.items() if a != asn)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return all(pool.map(ok, routers.items()))


def ksm_settle(timeout: float) -> Optional[float]:
    """With KSM running: seconds until a full scan merges under 1 % more pages."""
    got = sampling.ksm_settle(timeout)
    return None if got is None else got["seconds"]


# ---- the topology, as both tools get it ------------------------------------------------------------

def class_spec(n_ases: int, workdir: str) -> Tuple[str, Dict[str, Any]]:
    """minet's class topology of N ASes (all configured, IPv4 only) under a unique instance name,
    and the same graph as a plain spec for the peer."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from lab_up import unique_copy
    from minet_sdn.provision.converge import prefixes
    from minet_sdn.topology import load_topology
    from minet_sdn.topology.addressing import intra_links
    from minet_sdn.topology.generate import class_topology
    src = os.path.join(workdir, f"vs{n_ases}.yaml")
    with open(src, "w") as fh:
        fh.write(class_topology(n_ases, servers=4, name=f"vs{n_ases}", unconfigured=0))
    path = unique_copy(src, workdir, "vs", ipv6=False)
    topo = load_topology(path)
    known = prefixes(topo)
    ases = []
    for asn, as_ in sorted(topo.ases.items()):
        rs = list(as_.routers)
        ases.append({"asn": asn, "routers": rs, "prefix": str(known.v4[asn]),
                     "ring": [[a, b] for a, b, _ in intra_links(as_)],
                     "reflectors": [rs[0], rs[len(rs) // 2]] if len(rs) >= 4 else []})
    links = [{"a": l.a.router, "b": l.b.router, "rel": l.rel} for l in topo.links]
    return path, {"ases": ases, "links": links}


# ---- minet -----------------------------------------------------------------------------------------

def run_minet(path: str, args) -> Dict[str, Any]:
    from lab_up import lab_processes, leftovers
    from minet_sdn.lab.lab import Lab
    from minet_sdn.lab import quiet
    from minet_sdn.topology import load_topology
    topo = load_topology(path)
    mem = MemSampler()
    r: Dict[str, Any] = {"routers": len(topo.routers)}
    t0 = time.monotonic()
    done = False
    try:
        Lab(path, progress=quiet).up(bgp_timeout=args.timeout)       # returns when every route is there
        r["converge_s"] = round(time.monotonic() - t0, 2)
        r["memory_peak_mb"] = round(max(mem.peak(), mem.now()), 1)
        time.sleep(args.settle)
        r["ksm_settle_s"] = ksm_settle(args.merge_timeout)
        r["memory_peak_mb"] = round(max(r["memory_peak_mb"], mem.peak()), 1)

        def pids() -> Dict[int, str]:
            got = lab_processes(topo.tag)
            for pid in _lab_host_processes(path):          # controller, relay: outside the namespaces
                c = _comm(pid)
                if c:
                    got[pid] = c
            return got
        r["cpu"] = cpu_share(pids, args.cpu_seconds)
        r["memory_steady_mb"] = round(mem.now(), 1)
        r["pss"] = frr_pss(lab_processes(topo.tag))
        t1 = time.monotonic()
        problems = Lab(path, progress=quiet).down()
        r["teardown_s"] = round(time.monotonic() - t1, 2)
        done = True
        if problems:
            r["teardown_problems"] = problems
    finally:
        mem.stop()
        if not done:
            Lab(path, progress=quiet).remove()
    left = leftovers(topo)
    if left:
        raise RuntimeError(f"minet lab down left {left}")
    return r


def _lab_host_processes(path: str) -> List[int]:
    """pids of the lab's controller/relay processes outside the namespaces (their pid files)."""
    from minet_sdn.lab import paths
    from minet_sdn.topology import load_topology
    out = []
    d = paths.state_dir(load_topology(path))
    for root, _dirs, files in os.walk(d):
        for f in files:
            if f.endswith(".pid") and ("controller" in f or "relay" in f):
                try:
                    out.append(int(open(os.path.join(root, f)).read().split()[0]))
                except (OSError, ValueError, IndexError):
                    pass
    return out


# ---- the peer (runs in the peer's venv: `--peer-child SPEC`) -----------------------------------------

def peer_child(spec_file: str, timers: str, settle: float, cpu_seconds: float, timeout: float) -> Dict[str, Any]:
    import ipaddress
    import mininet.clean
    import mininet.log

    def refuse(*_a, **_k):                 # Mininet's cleanup kills by process name, machine-wide
        raise RuntimeError("IPMininet asked for mininet.clean.cleanup (refused: it kills processes by name)")
    mininet.clean.cleanup = refuse
    mininet.log.setLogLevel("warning")
    from ipmininet.ipnet import IPNet
    from ipmininet.iptopo import IPTopo
    from ipmininet.router.config import BGP, OSPF, RouterConfig, AF_INET, ebgp_session, set_rr, bgp_peering, \
        CLIENT_PROVIDER, SHARE
    from ipmininet.router.config.zebra import QuaggaDaemon

    with open(spec_file) as fh:
        spec = json.load(fh)
    work = tempfile.mkdtemp(prefix="minet-peer-")
    shutil.chown(work, "frr", "frr")
    os.chmod(work, 0o755)

    # Debian's FRR refuses IPMininet's `-u root` unless root is in the frr groups: run the daemons
    # as frr instead (the machine's groups stay as they are), each router with its own vty sockets.
    start_line, dry_line = QuaggaDaemon.startup_line.fget, QuaggaDaemon.dry_run.fget

    def vty(node) -> str:
        d = os.path.join(work, f"{node.name}.vty")
        if not os.path.isdir(d):
            os.mkdir(d)
            shutil.chown(d, "frr", "frr")
        return d
    QuaggaDaemon.startup_line = property(
        lambda self: start_line(self).replace("-u root", f"-u frr -g frr --vty_socket {vty(self._node)}"))
    QuaggaDaemon.dry_run = property(lambda self: dry_line(self).replace("-u root", "-u frr -g frr"))

    asn_of = {}
    for as_ in spec["ases"]:
        for r in as_["routers"]:
            asn_of[f"{as_['asn']}.{r}"] = as_["asn"]

    class PeerBGP(BGP):
        """IPMininet's bgpd, plus: the AS prefix announced without a RIB route, matched timers."""
        def render(self, cfg, **kwargs):
            out = super().render(cfg, **kwargs)
            own = str(self._node.asn)
            for f, text in out.items():
                lines = []
                for line in text.splitlines():
                    lines.append(line)
                    s = line.split()
                    if s[:2] == ["router", "bgp"]:
                        lines.append("    no bgp network import-check")
                    elif timers == "matched" and len(s) == 4 and s[0] == "neighbor" and s[2] == "remote-as":
                        k, h = MATCHED["ibgp"] if s[3] == own else MATCHED["ebgp"]
                        lines.append(f"    neighbor {s[1]} timers {k} {h}")
                out[f] = "\n".join(lines) + "\n"
            return out

    class PeerOSPF(OSPF):
        """IPMininet's ospfd; matched: ring links point-to-point as minet's (no DR election, whose
        wait timer is a whole dead interval on a broadcast link)."""
        def render(self, cfg, **kwargs):
            out = super().render(cfg, **kwargs)
            if timers != "matched":
                return out
            for f, text in out.items():
                lines = []
                for line in text.splitlines():
                    lines.append(line)
                    if line.strip().startswith("ip ospf hello-interval"):
                        lines.append("  ip ospf network point-to-point")
                out[f] = "\n".join(lines) + "\n"
            return out

    def name(router: str) -> str:            # "12.MUNI" -> "r12_4" (Mininet interface names stay short)
        asn, r = router.split(".")
        as_ = next(a for a in spec["ases"] if a["asn"] == int(asn))
        return f"r{asn}_{as_['routers'].index(r)}"

    ospf_opts = {"hello_int": MATCHED["ospf_hello"], "dead_int": MATCHED["ospf_dead"]} if timers == "matched" else {}

    class ClassTopo(IPTopo):
        def build(self, *a, **kw):
            ebgp_net = ipaddress.ip_network("172.16.0.0/12").subnets(new_prefix=30)
            desc = {}                 # node name -> its RouterDescription (IPMininet's helpers want these)
            for as_ in spec["ases"]:
                asn, rs = as_["asn"], as_["routers"]
                pfx = ipaddress.ip_network(as_["prefix"])
                # inside the AS prefix (a /24 in minet's plan): loopbacks in the first /28, host LANs
                # /29s in the second quarter, ring /30s in the third
                quarters = list(pfx.subnets(new_prefix=pfx.prefixlen + 2))
                lo_net = next(quarters[0].subnets(new_prefix=28))
                subs = quarters[1].subnets(new_prefix=29)
                names = []
                for i, r in enumerate(rs):
                    n = self.addRouter(f"r{asn}_{i}", config=RouterConfig,
                                       lo_addresses=[f"{lo_net[i + 1]}/32"])
                    n.addDaemon(PeerOSPF, **ospf_opts)
                    n.addDaemon(PeerBGP, address_families=(AF_INET(networks=(str(pfx),)),))
                    names.append(n)
                    desc[f"r{asn}_{i}"] = n
                    lan = next(subs)
                    h = self.addHost(f"h{asn}_{i}")
                    lk = self.addLink(n, h)
                    lk[n].addParams(ip=(f"{lan[1]}/29",))
                    lk[h].addParams(ip=(f"{lan[2]}/29",))
                ring_net = quarters[2].subnets(new_prefix=30)
                for ra, rb in as_["ring"]:
                    s = next(ring_net)
                    lk = self.addLink(f"r{asn}_{rs.index(ra)}", f"r{asn}_{rs.index(rb)}")
                    lk[f"r{asn}_{rs.index(ra)}"].addParams(ip=(f"{s[1]}/30",))
                    lk[f"r{asn}_{rs.index(rb)}"].addParams(ip=(f"{s[2]}/30",))
                self.addAS(asn, routers=names)
                rr = [desc[f"r{asn}_{rs.index(x)}"] for x in as_["reflectors"]]
                if rr:
                    for x in rr:
                        set_rr(self, x, peers=[n for n in names if all(n is not y for y in rr)])
                    bgp_peering(self, rr[0], rr[1])
                else:
                    for i, x in enumerate(names):
                        for y in names[i + 1:]:
                            bgp_peering(self, x, y)
            for l in spec["links"]:
                a, b = desc[name(l["a"])], desc[name(l["b"])]
                s = next(ebgp_net)
                lk = self.addLink(a, b)
                lk[a].addParams(ip=(f"{s[1]}/30",))
                lk[b].addParams(ip=(f"{s[2]}/30",))
                if l["rel"] == "peer":
                    ebgp_session(self, a, b, link_type=SHARE)
                elif l["rel"] == "provider":           # a is b's provider
                    ebgp_session(self, b, a, link_type=CLIENT_PROVIDER)
                else:                                  # a is b's customer
                    ebgp_session(self, a, b, link_type=CLIENT_PROVIDER)
            super().build(*a, **kw)

    prefixes = {as_["asn"]: as_["prefix"] for as_ in spec["ases"]}
    me = os.getpid()
    r: Dict[str, Any] = {"timers": timers}
    mem = MemSampler()
    net = None
    t0 = time.monotonic()
    try:
        net = IPNet(topo=ClassTopo(), use_v6=False, allocate_IPs=False)
        net.start()
        r["started_s"] = round(time.monotonic() - t0, 2)
        routers = {str(n): (asn_of_node(n, spec), reader(os.path.join(work, f"{n}.vty")))
                   for n in net.routers}
        r["routers"] = len(routers)
        deadline = t0 + timeout
        while not routes_complete(routers, prefixes):
            if time.monotonic() > deadline:
                first = sorted(routers)[0]
                diag = [subprocess.run(["vtysh", "--vty_socket", os.path.join(work, f"{first}.vty"), "-c", c],
                                       capture_output=True, text=True, timeout=20).stdout[-1500:]
                        for c in ("show bgp summary", "show ip route", "show ip ospf neighbor")]
                import glob
                for f in sorted(glob.glob(os.path.join(work, f"*{first}*log")) + glob.glob(os.path.join(work, "*.log")))[:3]:
                    diag.append(f + ": " + open(f).read()[-1500:])
                diag.append(" ".join(os.listdir(work))[:500])
                raise RuntimeError(f"the peer did not converge within {timeout:g} s; {first}: " + "\n".join(diag))
            time.sleep(1.0)
        r["converge_s"] = round(time.monotonic() - t0, 2)
        r["memory_peak_mb"] = round(max(mem.peak(), mem.now()), 1)
        time.sleep(settle)
        r["cpu"] = cpu_share(lambda: {p: c for p, c in descendants(me).items()}, cpu_seconds)
        r["memory_steady_mb"] = round(mem.now(), 1)
        r["memory_peak_mb"] = round(max(r["memory_peak_mb"], mem.peak()), 1)
        r["pss"] = frr_pss(descendants(me))
        t1 = time.monotonic()
        net.stop()
        net = None
        r["teardown_s"] = round(time.monotonic() - t1, 2)
    finally:
        mem.stop()
        if net is not None:
            net.stop()
        shutil.rmtree(work, ignore_errors=True)
    left = {p: c for p, c in descendants(me).items() if c in FRR_DAEMONS or c in ("bash", "mnexec")}
    if left:
        r["left_processes"] = left
    return r


def asn_of_node(node, spec) -> int:
    return int(str(node).split("_")[0][1:])


def reader(vty_dir: str) -> Callable[[], Optional[str]]:
    def read() -> Optional[str]:
        try:
            return subprocess.run(["vtysh", "--vty_socket", vty_dir, "-c", "show ip route json"],
                                  capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
    return read


def run_peer(spec: Dict[str, Any], workdir: str, args) -> Dict[str, Any]:
    spec_file = os.path.join(workdir, "peer-spec.json")
    with open(spec_file, "w") as fh:
        json.dump(spec, fh)
    env = dict(os.environ)
    env["PATH"] = f"{os.path.dirname(args.peer_python)}:/usr/lib/frr:{env.get('PATH', '/usr/bin:/bin')}"
    proc = subprocess.run([args.peer_python, str(Path(__file__).resolve()), "--peer-child", spec_file,
                           "--peer-timers", args.peer_timers, "--settle", str(args.settle),
                           "--cpu-seconds", str(args.cpu_seconds), "--timeout", str(args.timeout)],
                          capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("PEER-RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"peer run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("PEER-RESULT "):])


# ---- report ----------------------------------------------------------------------------------------

def per_router_pss(r: Dict[str, Any]) -> float:
    return sum(v["total_mb"] for v in r["pss"].values()) / max(1, r["routers"])


def table(runs: Dict[str, Dict[str, Any]]) -> str:
    head = ("| ASes x 8 | converged minet / peer (ratio) | memory peak minet / peer (ratio) "
            "| memory steady minet / peer (ratio) | FRR PSS per router minet / peer | steady CPU minet / peer "
            "(machine busy) | teardown minet / peer |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for n in sorted(runs, key=int):
        m, p = runs[n].get("minet"), runs[n].get("peer")
        if not m or not p or "error" in m or "error" in p:
            continue

        def ratio(a: float, b: float) -> str:
            return f"{b / a:.1f}x" if a else "-"
        out.append(
            f"| {n} | **{m['converge_s']:.1f} / {p['converge_s']:.1f} s** ({ratio(m['converge_s'], p['converge_s'])}) "
            f"| {m['memory_peak_mb'] / 1024:.2f} / {p['memory_peak_mb'] / 1024:.2f} GiB "
            f"({ratio(m['memory_peak_mb'], p['memory_peak_mb'])}) "
            f"| {m['memory_steady_mb'] / 1024:.2f} / {p['memory_steady_mb'] / 1024:.2f} GiB "
            f"({ratio(m['memory_steady_mb'], p['memory_steady_mb'])}) "
            f"| {per_router_pss(m):.1f} / {per_router_pss(p):.1f} MB "
            f"| {m['cpu']['pct']:.1f} % / {p['cpu']['pct']:.1f} % ({m['cpu']['machine_pct']:.0f} / "
            f"{p['cpu']['machine_pct']:.0f} %) | {m['teardown_s']:.1f} / {p['teardown_s']:.1f} s |")
    return "\n".join(out)


def plot(runs: Dict[str, Dict[str, Any]], path: Path) -> Optional[Path]:
    ns = [n for n in sorted(runs, key=int) if all(runs[n].get(t) and "error" not in runs[n][t] for t in ("minet", "peer"))]
    if not ns:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rs = [int(n) * 8 for n in ns]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title, scale in ((axes[0], "converge_s", "converged (s)", 1),
                                  (axes[1], "memory_peak_mb", "memory: peak (solid), steady (dashed), GiB", 1024),
                                  (axes[2], None, "steady CPU (% of machine)", 1)):
        for tool, style in (("minet", "o-"), ("peer", "s-")):
            label = "minet" if tool == "minet" else "IPMininet"
            if key is None:
                ax.plot(rs, [runs[n][tool]["cpu"]["pct"] for n in ns], style, label=label)
            else:
                ax.plot(rs, [runs[n][tool][key] / scale for n in ns], style, label=label)
                if key == "memory_peak_mb":
                    ax.plot(rs, [runs[n][tool]["memory_steady_mb"] / scale for n in ns], style[0] + "--",
                            label=f"{label} steady")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("routers (ASes x 8)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="minet vs IPMininet on the same class-shaped Internet")
    p.add_argument("--ases", type=int, nargs="+", default=[10, 20, 40, 60])
    p.add_argument("--peer-timers", choices=("matched", "default"), default="matched")
    p.add_argument("--peer-python", default=PEER_PYTHON)
    p.add_argument("--settle", type=float, default=20.0)
    p.add_argument("--cpu-seconds", type=float, default=30.0)
    p.add_argument("--merge-timeout", type=float, default=300.0, help="minet: longest wait for KSM to settle")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--only", choices=("minet", "peer"))
    p.add_argument("--plot", default=str(ROOT / "bench" / "versus_ipmininet.png"))
    p.add_argument("--peer-child", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("versus_ipmininet: needs root (network namespaces, Open vSwitch, FRR)", file=sys.stderr)
        return 2
    if args.peer_child:
        r = peer_child(args.peer_child, args.peer_timers, args.settle, args.cpu_seconds, args.timeout)
        print("PEER-RESULT " + json.dumps(r), flush=True)
        return 0
    if args.only != "minet" and not os.path.exists(args.peer_python):
        print(f"versus_ipmininet: {args.peer_python} missing (the peer's venv; see docs/benchmarks.md)",
              file=sys.stderr)
        return 2
    info = machine()
    report: Dict[str, Any] = {"command": " ".join(["bench/versus_ipmininet.py"] + (argv or sys.argv[1:])),
                              "machine": info, "peer_timers": args.peer_timers, "runs": {}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"versus-ipmininet-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    print(f"# {report['command']} on {info['cpus']} CPUs, load {info['loadavg'][0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="minet-vs-") as workdir:
        for n in args.ases:
            path, spec = class_spec(n, workdir)
            runs = report["runs"].setdefault(str(n), {})
            for tool in ("minet", "peer"):
                if args.only and args.only != tool:
                    continue
                load = os.getloadavg()[0]
                print(f"## {n} x 8, {tool} (load {load:.1f})", flush=True)
                try:
                    r = run_minet(path, args) if tool == "minet" else run_peer(spec, workdir, args)
                except Exception as exc:        # noqa: BLE001 - recorded, the other sizes still run
                    r = {"error": str(exc)[-1500:]}
                r["loadavg_before"] = load
                runs[tool] = r
                print("   " + json.dumps(r), flush=True)
                with open(out, "w") as fh:
                    json.dump(report, fh, indent=1)
    print()
    print(table(report["runs"]))
    png = plot(report["runs"], Path(args.plot)) if args.plot else None
    print(f"\nsaved {os.path.relpath(out, ROOT)}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
