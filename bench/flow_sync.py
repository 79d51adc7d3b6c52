#!/usr/bin/env python3
"""Flow sync benchmark: the controller pushing N remote links' flows into Open vSwitch, vs ovs-ofctl.

    python3 bench/flow_sync.py [--links 1000 10000] [--repeat 3] [--json] [--profile]
                               [--variants [NAME ...]] [--keep]

Needs root and Open vSwitch (py-spy for --profile). For every N: a topology of N remote links
between VM1 and VM2 (isolation key), a private OvS instance in a fresh namespace
`mnbench-<pid>-<N>`, and on it the VM1->VM2 remote bridge as provisioning makes it (the model's
name and dpid, netdev, fail_mode=secure, OpenFlow13, no in-band, controller tcp:127.0.0.1:<free
port> out-of-band), holding only its GRE tunnel port (key=flow, ofport 1). The link ports do not
exist (10,000 veths take too long to make): the controller (bench/flow_sync_app.py, the real
RemoteLinks told that every link port is present) runs as a subprocess inside the namespace, the
way `minet controller` runs, and pushes the flows of every link.

Measured `--repeat` times each, interleaved (so load from elsewhere hits both sides alike), after
one unmeasured warm-up add-flows (the first push into a fresh bridge was at times much slower
than later ones; it is reported as ovs_ofctl_first_add_flows_s):
  initial  ours: table emptied (del-flows), controller process started; from the start of its
                 sync of the switch (port-desc request sent) to the barrier reply that follows
                 the FlowMods (OvS has applied them all)
           ref:  `ovs-ofctl -O OpenFlow13 add-flows` of the same flows as text, after del-flows,
                 with no controller connected
  no-op    ours: controller process restarted against the full table; from sync start until
                 it has decided there is nothing to send (must be 0 FlowMods)
           ref:  `ovs-ofctl -O OpenFlow13 --bundle replace-flows` of the same file
Both must leave the same table: flow_count every time, and the whole `dump-flows --no-stats`
compared once per N (and once per prototype). Reported: medians of wall time and their ratio,
and CPU seconds (the controller's own over its sync, or ovs-ofctl's, each plus what
ovs-vswitchd used meanwhile) and their ratio, which the machine's load disturbs far less.

The controller target stays configured throughout: the bench restarts the controller process,
never the target, because OvS flushes the table when a bridge goes from no controller to one.

--variants also measures bench-only prototypes of product changes at the largest N
(bench/flow_sync_variants.py); --profile records the controller with py-spy during one more
initial and no-op sync at the largest N. Results: a table (or --json) and
bench/results/flow_sync-<date>.json (git-ignored). Findings: bench/flow_sync.md.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minet_sdn.core.flows import IN_PORT, Flow, bridge_flows  # noqa: E402
from minet_sdn.topology import load_topology                  # noqa: E402

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
PREFIX = f"mnbench-{os.getpid()}"
TARGET_RATIO = 2.0


# ---- the topology ----------------------------------------------------------------------------

def topology_yaml(n: int) -> str:
    lines = ["name: bench", "fabric: {isolation: key, encapsulation: gre}",
             "servers:", "  VM1: {underlay_ip: 192.0.2.1}", "  VM2: {underlay_ip: 192.0.2.2}",
             "ases:", "  1: {server: VM1, routers: [A]}", "  2: {server: VM2, routers: [B]}",
             "links:"]
    lines += ["  - {a: 1.A, b: 2.B, rel: peer}"] * n
    return "\n".join(lines) + "\n"


# ---- the controller's Flow values as ovs-ofctl text --------------------------------------------

_MATCH = {"in_port": "in_port", "eth_type": "dl_type", "arp_op": "arp_op", "arp_tpa": "arp_tpa",
          "arp_spa": "arp_spa", "tunnel_id": "tun_id", "ip_dscp": "ip_dscp"}
_SET = {"tunnel_id": "tun_id"}
_NXM = {"eth_src": ("NXM_OF_ETH_SRC", 48), "eth_dst": ("NXM_OF_ETH_DST", 48),
        "arp_sha": ("NXM_NX_ARP_SHA", 48), "arp_tha": ("NXM_NX_ARP_THA", 48),
        "arp_spa": ("NXM_OF_ARP_SPA", 32), "arp_tpa": ("NXM_OF_ARP_TPA", 32)}


def _value(v) -> str:
    return str(v)         # ints in decimal (ovs-ofctl takes no hex port numbers), addresses as they are


def _nxm(field: str, n_bits: int) -> str:
    name, width = _NXM[field]
    return f"{name}[]" if n_bits == width else f"{name}[0..{n_bits - 1}]"


def ofctl_action(action) -> str:
    kind = action[0]
    if kind == "output":
        return "in_port" if action[1] == IN_PORT else f"output:{action[1]}"
    if kind == "set_field":
        return f"set_field:{_value(action[2])}->{_SET.get(action[1], action[1])}"
    if kind == "move":
        return f"move:{_nxm(action[1], action[3])}->{_nxm(action[2], action[3])}"
    raise ValueError(f"no ovs-ofctl form for {action!r}")


def ofctl_flow(flow: Flow) -> str:
    match = dict(flow.match)
    fields = []
    if "eth_type" in match:                       # prerequisite first
        fields.append(f"dl_type={match.pop('eth_type'):#06x}")
    fields += [f"{_MATCH[k]}={_value(v)}" for k, v in sorted(match.items())]
    actions = ",".join(ofctl_action(a) for a in flow.actions) or "drop"
    head = ",".join([f"cookie={flow.cookie:#x}", f"table={flow.table_id}", f"priority={flow.priority}"] + fields)
    return f"{head} actions={actions}"


# ---- processes and a private Open vSwitch ------------------------------------------------------

def run(*argv, check=True, timeout=120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, argv))}: exit {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[:2000]}")
    return proc


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def pid_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid_alive(pid: int) -> bool:
    """Running (a zombie does not count: it has exited, only its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


class Ovs:
    """ovsdb-server + ovs-vswitchd in their own namespace and directory."""

    def __init__(self, ns: str, d: Path):
        self.ns, self.dir = ns, d
        self.ns_made = False
        self.pidfiles = [d / "vswitchd.pid", d / "ovsdb.pid"]

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        run("ip", "netns", "add", self.ns)
        self.ns_made = True
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        run("ovsdb-tool", "create", self.dir / "conf.db", SCHEMA)
        env = [f"OVS_{k}DIR={self.dir}" for k in ("RUN", "DB", "LOG", "SYSCONF")]
        run("ip", "netns", "exec", self.ns, "env", *env, "ovsdb-server", "--remote=punix:%s" % (self.dir / "db.sock"),
            f"--pidfile={self.pidfiles[1]}", "--detach", f"--log-file={self.dir / 'ovsdb.log'}", self.dir / "conf.db")
        self.vsctl("--no-wait", "init")
        run("ip", "netns", "exec", self.ns, "env", *env, "ovs-vswitchd", f"unix:{self.dir / 'db.sock'}",
            f"--pidfile={self.pidfiles[0]}", "--detach", f"--log-file={self.dir / 'vswitchd.log'}")

    def vsctl(self, *args) -> str:
        return run("ovs-vsctl", "--timeout=60", f"--db=unix:{self.dir / 'db.sock'}", *args).stdout

    def mgmt(self, bridge: str) -> str:
        return f"unix:{self.dir / bridge}.mgmt"

    def flow_count(self, bridge: str) -> int:
        out = run("ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", self.mgmt(bridge)).stdout
        return int(out.split("flow_count=")[1].split()[0])

    def table(self, bridge: str) -> List[str]:
        out = run("ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", self.mgmt(bridge)).stdout
        return sorted(line.strip() for line in out.splitlines() if "priority=" in line)

    def vswitchd_cpu(self) -> float:
        return pid_cpu(int(self.pidfiles[0].read_text().strip()))

    def stop(self) -> None:
        for pf in self.pidfiles:
            try:
                pid = int(pf.read_text().strip())
            except (OSError, ValueError):
                continue
            _stop_pid(pid)
        if self.ns_made:
            run("ip", "netns", "del", self.ns, check=False)
            self.ns_made = False


class Controller:
    """The bench controller process (bench/flow_sync_app.py) inside the namespace."""

    def __init__(self, ovs: Ovs, topo_path: Path, ofp_port: int, rest_port: int, timing: Path, log: Path,
                 variant: Optional[str] = None):
        self.ovs, self.timing, self.log = ovs, timing, log
        self.ofp_port = ofp_port
        app = "bench.flow_sync_variants" if variant else "bench.flow_sync_app"
        argv = ["ip", "netns", "exec", ovs.ns, sys.executable, str(Path(__file__).resolve()), "_controller",
                "--topology", str(topo_path), "--ofp", f"127.0.0.1:{ofp_port}", "--rest", f"127.0.0.1:{rest_port}",
                "--log-file", str(log), "--app", app, "--state", str(log.with_name("controller-state.json"))]
        env = dict(os.environ, MNBENCH_TIMING=str(timing), PYTHONPATH=str(ROOT))
        env.pop("MNBENCH_VARIANT", None)
        if variant:
            env["MNBENCH_VARIANT"] = variant
        self.err = open(log.with_suffix(".stderr"), "a")
        # its own session: a Ctrl-C reaches only us, and we stop it by pid in our cleanup
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.err, stderr=self.err,
                                     start_new_session=True)
        self.seen = self._lines()

    def _lines(self) -> int:
        try:
            return len(self.timing.read_text().splitlines())
        except OSError:
            return 0

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited ({self.proc.returncode}); see {self.err.name}")
            out = run("ip", "netns", "exec", self.ovs.ns, "ss", "-Hltn", f"sport = :{self.ofp_port}").stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise RuntimeError("controller did not listen in time")

    def next_sync(self, timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                    raise RuntimeError(f"controller exited ({self.proc.returncode}); see {self.err.name}")
            lines = self.timing.read_text().splitlines() if self.timing.exists() else []
            if len(lines) > self.seen:
                self.seen += 1
                return json.loads(lines[self.seen - 1])
            time.sleep(0.02)
        raise RuntimeError(f"no sync record within {timeout:.0f} s; see {self.log} and the OvS logs")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.err.close()


def free_ports(ns: str, n: int = 2) -> List[int]:
    code = ("import socket;s=[socket.socket() for _ in range(%d)];[x.bind(('127.0.0.1',0)) for x in s];"
            "print(' '.join(str(x.getsockname()[1]) for x in s))" % n)
    return [int(p) for p in run("ip", "netns", "exec", ns, sys.executable, "-c", code).stdout.split()]


# ---- profiling ---------------------------------------------------------------------------------

def summarise_profile(raw: Path, top: int = 25) -> dict:
    """Collapsed py-spy stacks -> share of samples by (inclusive) function and by leaf."""
    incl: collections.Counter = collections.Counter()
    leaf: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        seen = set()
        for f in frames[1:]:
            name = f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" \
                if " (" in f else f
            if name not in seen:
                incl[name] += n
                seen.add(name)
        if len(frames) > 1:
            f = frames[-1]
            leaf[f.split(" (")[0] + (" (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                                     if " (" in f else "")] += n
    pct = lambda c: [(k, round(100.0 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "threads": pct(threads), "inclusive_pct": pct(incl), "self_pct": pct(leaf)}


def start_pyspy(pid: int, out: Path) -> Optional[subprocess.Popen]:
    exe = shutil.which("py-spy")
    if not exe:
        print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
        return None
    # --gil: only samples of the thread holding the GIL, i.e. where the Python CPU goes (threads
    # blocked in select() or on the send queue would otherwise show up as busy)
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "250", "--threads", "--gil",
                             "--format", "raw",
                             "--nonblocking", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


# ---- one N -------------------------------------------------------------------------------------

def bench_links(n: int, repeat: int, work: Path, profile_dir: Optional[Path], variants: List[str], say) -> dict:
    topo_path = work / f"topo-{n}.yaml"
    topo_path.write_text(topology_yaml(n))
    topo = load_topology(str(topo_path))
    bridge = topo.bridge("VM1", "VM2")
    ports = [topo.link(lid).ofport for lid in bridge.link_ids]
    flows = bridge_flows(topo, bridge, ports)
    flow_file = work / f"flows-{n}.txt"
    flow_file.write_text("".join(ofctl_flow(f) + "\n" for f in flows.values()))
    expected = len(flows)
    if variants:
        from bench.flow_sync_variants import verify
        say(f"N={n}: prototype encoders byte-identical to os-ken for {verify(flows.values())} flows")

    ovs = Ovs(f"{PREFIX}-{n}", work / f"ovs-{n}")
    controllers: List[Controller] = []
    spies: List[subprocess.Popen] = []
    result = {"links": n, "flows": expected, "bridge": bridge.name, "dpid": f"{bridge.dpid:016x}"}
    try:
        ovs.start()
        br, tun = bridge.name, bridge.tunnel_port
        ofp_port, rest_port = free_ports(ovs.ns)
        # The bridge as provisioning makes it, with only its tunnel port. The controller target is
        # set from the start and stays, as in real use: the bench restarts the controller process,
        # never the target (OvS flushes the table whenever a bridge goes from no controller to one
        # or back). While no controller process runs, the bridge is disconnected (fail_mode=secure
        # keeps its flows) and ovs-ofctl has it to itself. max_backoff=1000 only makes OvS retry a
        # stopped controller every second instead of up to every 8 s: a shorter wait, same sync.
        ovs.vsctl("--", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure",
                  "stp_enable=false", "protocols=OpenFlow13", f"other-config:datapath-id={bridge.dpid:016x}",
                  "other-config:disable-in-band=true",
                  "--", "set-controller", br, f"tcp:127.0.0.1:{ofp_port}",
                  "--", "set", "controller", br, "connection-mode=out-of-band", "max_backoff=1000",
                  "--", "add-port", br, tun, "--", "set", "interface", tun, "type=gre",
                  f"options:remote_ip={topo.servers['VM2'].underlay_ip}", "options:key=flow", "ofport_request=1")
        mgmt = ovs.mgmt(br)
        ofctl = ("ovs-ofctl", "-O", "OpenFlow13")
        timing = work / f"timing-{n}.jsonl"
        log = work / f"controller-{n}.log"

        def check_count(what):
            got = ovs.flow_count(br)
            if got != expected:
                raise RuntimeError(f"N={n} {what}: {got} flows in the table, expected {expected}")

        def check_table(what):
            table = ovs.table(br)
            if table != ref_table:
                raise RuntimeError(f"N={n}: {what} and ovs-ofctl tables differ: only after {what} "
                                   f"{sorted(set(table) - set(ref_table))[:3]}, only after ovs-ofctl "
                                   f"{sorted(set(ref_table) - set(table))[:3]}")

        def timed(*args) -> dict:
            """Run ovs-ofctl: wall seconds, and CPU seconds of ovs-ofctl plus ovs-vswitchd meanwhile."""
            c0, v0, t0 = children_cpu(), ovs.vswitchd_cpu(), time.perf_counter()
            run(*ofctl, *args)
            wall = time.perf_counter() - t0
            return {"wall": wall, "cpu": children_cpu() - c0 + ovs.vswitchd_cpu() - v0}

        def sync_once(fresh: bool, spy_out: Optional[Path] = None, variant: Optional[str] = None) -> dict:
            if fresh:
                run(*ofctl, "del-flows", mgmt)
            ctl = Controller(ovs, topo_path, ofp_port, rest_port, timing, log, variant)
            controllers.append(ctl)
            spy = None
            try:
                ctl.wait_listening()
                if spy_out:
                    spy = start_pyspy(ctl.proc.pid, spy_out)
                if spy:
                    spies.append(spy)
                v0 = ovs.vswitchd_cpu()
                rec = ctl.next_sync(60 + n / 100)   # OvS connects within a second of the listener
                # the controller's CPU over the sync, plus what ovs-vswitchd used from the moment the
                # controller listened (connection, handshake, the sync itself)
                rec["total_cpu_s"] = rec["cpu_s"] + ovs.vswitchd_cpu() - v0
                check_count("controller sync")
            finally:
                ctl.stop()
                controllers.remove(ctl)
            if spy:
                spy.wait(30)
                spies.remove(spy)
            if rec["switch_errors"] or rec["handler_errors"]:
                raise RuntimeError(f"N={n}: sync had {rec['switch_errors']} OpenFlow errors and "
                                   f"{rec['handler_errors']} handler errors; see {log}")
            return rec

        # Warm-up, not compared: the first add-flows into a fresh bridge was at times 2-3x slower than
        # later ones, and every measured push below lands on a bridge that already held these flows.
        result["ovs_ofctl_first_add_flows_s"] = timed("add-flows", mgmt, flow_file)["wall"]
        check_count("ovs-ofctl add-flows (warm-up)")

        # Interleaved, so that load from elsewhere on the machine hits both sides alike.
        ref_add, ref_bundle, ref_noop, ours_add, ours_noop = [], [], [], [], []
        ref_table: List[str] = []
        for r in range(repeat):
            run(*ofctl, "del-flows", mgmt)
            ref_add.append(timed("add-flows", mgmt, flow_file))
            check_count("ovs-ofctl add-flows")
            if r == 0:
                ref_table = ovs.table(br)
            ref_noop.append(timed("--bundle", "replace-flows", mgmt, flow_file))
            check_count("ovs-ofctl replace-flows")
            run(*ofctl, "del-flows", mgmt)
            ref_bundle.append(timed("--bundle", "add-flows", mgmt, flow_file))
            check_count("ovs-ofctl --bundle add-flows")

            ours_add.append(sync_once(fresh=True))
            if r == 0:
                check_table("the controller")
                result["same_table_as_ovs_ofctl"] = True
            ours_noop.append(sync_once(fresh=False))
            if ours_noop[-1]["flow_mods"]:
                raise RuntimeError(f"N={n}: no-op resync sent {ours_noop[-1]['flow_mods']} FlowMods")
            say(f"N={n} run {r + 1}/{repeat}: initial ours {ours_add[-1]['total_s']:.3f}s "
                f"(CPU {ours_add[-1]['cpu_s']:.3f}s) vs ovs-ofctl "
                f"{ref_add[-1]['wall']:.3f}s; no-op ours {ours_noop[-1]['total_s']:.3f}s vs "
                f"{ref_noop[-1]['wall']:.3f}s")

        def med_phases(recs, key="phases_s"):
            return {k: round(statistics.median(rec[key][k] for rec in recs), 4) for k in recs[0][key]}

        def ours(recs):
            return {"ours_s": med(rec["total_s"] for rec in recs), "ours_runs_s": [rec["total_s"] for rec in recs],
                    "ours_cpu_s": med(rec["cpu_s"] for rec in recs),
                    "ours_with_vswitchd_cpu_s": med(rec["total_cpu_s"] for rec in recs),
                    "phases_s": med_phases(recs), "phases_cpu_s": med_phases(recs, "phases_cpu_s")}

        def ref(runs, prefix="ovs_ofctl"):
            return {f"{prefix}_s": med(x["wall"] for x in runs), f"{prefix}_runs_s": [x["wall"] for x in runs],
                    f"{prefix}_with_vswitchd_cpu_s": med(x["cpu"] for x in runs)}

        def ratios(m):
            m["ratio"] = m["ours_s"] / m["ovs_ofctl_s"]
            m["cpu_ratio"] = m["ours_with_vswitchd_cpu_s"] / m["ovs_ofctl_with_vswitchd_cpu_s"]
            return m

        med = statistics.median
        result["initial"] = ratios(dict(ours(ours_add), **ref(ref_add), **ref(ref_bundle, "ovs_ofctl_bundle"),
                                        flow_mods=ours_add[0]["flow_mods"], messages=ours_add[0]["messages"]))
        result["noop"] = ratios(dict(ours(ours_noop), **ref(ref_noop), flows_read=ours_noop[0]["flows_read"],
                                     flow_mods=max(rec["flow_mods"] for rec in ours_noop)))

        if variants:
            from bench.flow_sync_variants import NOOP_VARIANTS
            result["variants"] = {}
            for variant in variants:
                recs, refs, noops, noop_refs = [], [], [], []
                for r in range(repeat):
                    run(*ofctl, "del-flows", mgmt)
                    refs.append(timed("add-flows", mgmt, flow_file))
                    recs.append(sync_once(fresh=True, variant=variant))
                    if r == 0:
                        check_table(f"variant {variant}")
                    if variant in NOOP_VARIANTS:
                        noop_refs.append(timed("--bundle", "replace-flows", mgmt, flow_file))
                        noops.append(sync_once(fresh=False, variant=variant))
                        if noops[-1]["flow_mods"]:
                            raise RuntimeError(f"N={n} variant {variant}: no-op resync sent FlowMods")
                v = {"initial": dict(ours(recs), **ref(refs), messages=recs[0]["messages"],
                                     same_table_as_ovs_ofctl=True)}
                if noops:
                    v["noop"] = dict(ours(noops), **ref(noop_refs), flow_mods=0)
                for m in v.values():
                    ratios(m)
                result["variants"][variant] = v
                say(f"N={n} variant {variant}: " + "; ".join(
                    f"{k} {m['ours_s']:.3f}s vs ovs-ofctl {m['ovs_ofctl_s']:.3f}s (x{m['ratio']:.2f}, "
                    f"CPU x{m['cpu_ratio']:.2f})" for k, m in v.items()))

        if profile_dir is not None:
            prof = {}
            for what, fresh in (("initial", True), ("noop", False)):
                raw = profile_dir / f"profile-{n}-{what}.txt"
                rec = sync_once(fresh=fresh, spy_out=raw)
                prof[what] = {"sync_s": rec["total_s"], "cpu_s": rec["cpu_s"], "phases_s": rec["phases_s"],
                              "raw": str(raw.relative_to(ROOT))}
                if raw.exists():
                    prof[what].update(summarise_profile(raw))
            result["profile"] = prof
        return result
    finally:
        for ctl in list(controllers):
            ctl.stop()
        for spy in spies:
            if spy.poll() is None:
                _stop_pid(spy.pid)
        ovs.stop()


# ---- the controller process (runs inside the namespace) ---------------------------------------

def controller_main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="flow_sync.py _controller")
    p.add_argument("--topology", required=True)
    p.add_argument("--ofp", required=True)
    p.add_argument("--rest", required=True)
    p.add_argument("--log-file")
    p.add_argument("--app", default="bench.flow_sync_app")
    p.add_argument("--state", help="the controller's state file (kept in the bench's work directory)")
    args = p.parse_args(argv)
    import importlib
    import logging
    logging.basicConfig(level=logging.INFO, filename=args.log_file,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # what `minet controller` does (minet_sdn/cli/main.py), with the bench app instead
    from os_ken import cfg
    from os_ken.base import app_manager
    importlib.import_module("os_ken.controller.controller")   # registers the ofp listen options
    ofp_host, _, ofp_port = args.ofp.rpartition(":")
    rest_host, _, rest_port = args.rest.rpartition(":")
    cfg.CONF(args=["--ofp-listen-host", ofp_host, "--ofp-tcp-listen-port", ofp_port], project="os_ken")
    from minet_sdn.apps import remote_links
    remote_links.CONFIG.update(topology=args.topology, rest=(rest_host, int(rest_port)), state=args.state)
    app_manager.AppManager.run_apps([args.app])
    return 0


# ---- main --------------------------------------------------------------------------------------

def print_table(results: List[dict]) -> None:
    print("wall s: median of the runs; CPU s: the controller (its sync) or ovs-ofctl, plus ovs-vswitchd")
    print(f"{'N':>6} {'flows':>6}  {'phase':<8} {'ours s':>8} {'ovs-ofctl s':>11} {'ratio':>6}  {'FlowMods':>8}"
          f"  {'ours CPU s':>10} {'ofctl CPU s':>11} {'CPU ratio':>9}")
    for r in results:
        for k, label in (("initial", "initial"), ("noop", "no-op")):
            m = r[k]
            print(f"{r['links']:>6} {r['flows']:>6}  {label:<8} {m['ours_s']:>8.3f} {m['ovs_ofctl_s']:>11.3f} "
                  f"{m['ratio']:>6.2f}  {m['flow_mods']:>8}  {m['ours_with_vswitchd_cpu_s']:>10.3f} "
                  f"{m['ovs_ofctl_with_vswitchd_cpu_s']:>11.3f} {m['cpu_ratio']:>9.2f}")
    for r in results:
        for k, label in (("initial", "initial"), ("noop", "no-op")):
            m = r[k]
            extra = f"; ovs-ofctl --bundle add-flows {m['ovs_ofctl_bundle_s']:.3f}" if k == "initial" else ""
            print(f"N={r['links']}: {label} phases, median s (controller CPU s): "
                  + ", ".join(f"{p} {v:.3f} ({m['phases_cpu_s'][p]:.3f})" for p, v in m["phases_s"].items()) + extra)
        for name, v in r.get("variants", {}).items():
            for k, m in v.items():
                print(f"N={r['links']}: prototype {name:<16} {k:<7} {m['ours_s']:>7.3f}s vs ovs-ofctl "
                      f"{m['ovs_ofctl_s']:.3f}s: ratio {m['ratio']:.2f}, CPU {m['ours_with_vswitchd_cpu_s']:.3f}s vs "
                      f"{m['ovs_ofctl_with_vswitchd_cpu_s']:.3f}s: CPU ratio {m['cpu_ratio']:.2f}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_controller"]:
        return controller_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--links", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--profile", action="store_true", help="py-spy the controller at the largest N")
    p.add_argument("--variants", nargs="*", metavar="NAME",
                   help="also measure bench-only prototypes of product changes at the largest N "
                        "(bench/flow_sync_variants.py; no NAME: all of them)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, flow files)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("flow_sync.py: needs root (namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    for tool in ("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-vsctl", "ip", "ss"):
        if not shutil.which(tool):
            print(f"flow_sync.py: {tool} not found", file=sys.stderr)
            return 2

    variants: List[str] = []
    if args.variants is not None:
        from bench.flow_sync_variants import VARIANTS
        variants = args.variants or list(VARIANTS)
        bad = [v for v in variants if v not in VARIANTS]
        if bad:
            print(f"flow_sync.py: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
            return 2
    say = (lambda msg: print(msg, file=sys.stderr, flush=True))
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    profile_dir = None
    if args.profile:
        profile_dir = results_dir / f"flow_sync-{stamp}-profile"
        profile_dir.mkdir()

    def on_term(signum, frame):        # turn SIGTERM into the same clean-up path as Ctrl-C
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    results = []
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        for n in args.links:
            last = n == max(args.links)
            results.append(bench_links(n, args.repeat, work, profile_dir if last else None,
                                       variants if last else [], say))
    except KeyboardInterrupt:
        say("interrupted: cleaned up")
        return 130
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    import platform
    out = {"benchmark": "flow_sync", "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "command": "python3 bench/flow_sync.py " + " ".join(argv),
           "repeat": args.repeat, "statistic": "median", "target": f"ours <= {TARGET_RATIO}x ovs-ofctl at 10000 links",
           "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ovs": run("ovs-vsctl", "--version").stdout.split("\n")[0],
                    "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
           "wall_s": round(time.monotonic() - started, 1), "results": results}
    big = [r for r in results if r["links"] == 10000]
    if big:
        out["target_met"] = big[0]["initial"]["ratio"] <= TARGET_RATIO
        out["target_met_by_cpu"] = big[0]["initial"]["cpu_ratio"] <= TARGET_RATIO
    path = results_dir / f"flow_sync-{stamp}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print_table(results)
        if big:
            print(f"target (initial, 10000 links): ours <= {TARGET_RATIO}x ovs-ofctl: "
                  f"{'met' if out['target_met'] else 'MISSED'} (wall x{big[0]['initial']['ratio']:.2f}; "
                  f"by CPU {'met' if out['target_met_by_cpu'] else 'MISSED'}, x{big[0]['initial']['cpu_ratio']:.2f})")
        print(f"saved {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
