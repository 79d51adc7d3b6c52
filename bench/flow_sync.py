#!/usr/bin/env python3
"""Flow sync benchmark: the controller pushing N remote links' flows into Open vSwitch, vs ovs-ofctl.

    python3 bench/flow_sync.py [--links 100 1000 10000 50000] [--modes key tos] [--repeat 3]
                               [--json] [--profile] [--plot PNG] [--keep]

Needs root and Open vSwitch (py-spy for --profile). For every N and isolation mode: a topology of
N remote links from VM1 (key: all towards VM2, one bridge; tos: at most 63 per server pair, so
towards ceil(N/63) peers, one bridge each), a private OvS instance in a fresh namespace
`mnbench-<pid>-<mode>-<N>`, and on it VM1's remote bridges as provisioning makes them (the model's
names and dpids, netdev, fail_mode=secure, OpenFlow13, no in-band, controller tcp:127.0.0.1:<free
port> out-of-band), each holding only its GRE tunnel port (key=flow, ofport 1). The link ports do
not exist (10,000 veths take too long to make): the controller (bench/flow_sync_app.py, the real
RemoteLinks told that every link port is present) runs as a subprocess inside the namespace, the
way `minet controller` runs, and pushes the flows of every link. With several bridges, ours is
from the first sync's start to the last one's end, and the reference is the sum of one ovs-ofctl
run per bridge.

Measured `--repeat` times each, interleaved (so load from elsewhere hits both sides alike), after
one unmeasured warm-up add-flows (the first push into a fresh bridge was at times much slower
than later ones; it is reported as ovs_ofctl_first_add_flows_s):
  initial  ours: table emptied (del-flows), controller process started; from the start of its
                 sync of the switch (port-desc request sent) to the barrier reply that follows
                 the FlowMods (OvS has applied them all)
           ref:  `ovs-ofctl -O OpenFlow13 --bundle add-flows` of the same flows as text (the
                 target: ours <= 1.0x), after del-flows, with no controller connected; plain
                 `add-flows` (no bundle) is measured too
  no-op    ours: controller process restarted against the full table; from sync start until
                 it has decided there is nothing to send (must be 0 FlowMods)
           ref:  `ovs-ofctl -O OpenFlow13 --bundle replace-flows` of the same file (target:
                 ours <= 1.0x)
Both must leave the same table: flow_count every time, and the whole `dump-flows --no-stats`
compared once per N (and once per prototype). Reported: medians of wall time and their ratio,
and CPU seconds (the controller's own over its sync, or ovs-ofctl's, each plus what
ovs-vswitchd used meanwhile) and their ratio, which the machine's load disturbs far less.

The controller target stays configured throughout: the bench restarts the controller process,
never the target, because OvS flushes the table when a bridge goes from no controller to one.

--profile records the controller with py-spy during one more initial and no-op sync at the
largest N. Results: a table (or --json), bench/results/flow_sync-<date>.json (git-ignored) and,
with --plot, a PNG of the scale curve (matplotlib). Findings: bench/flow_sync.md.
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
from minet_sdn import host                                    # noqa: E402
from minet_sdn.topology import load_topology, names           # noqa: E402

PREFIX = f"mnbench-{os.getpid()}"
TARGET_RATIO = 1.0          # ours <= 1.0x ovs-ofctl --bundle (add-flows / replace-flows)
TOS_PER_PAIR = 63


# ---- the topology ----------------------------------------------------------------------------

def topology_yaml(n: int, mode: str = "key") -> str:
    """N links from VM1: key mode all to VM2; tos mode at most 63 per peer server."""
    peers = 1 if mode == "key" else -(-n // TOS_PER_PAIR)
    lines = ["name: bench", f"fabric: {{isolation: {mode}, encapsulation: gre}}", "servers:"]
    lines += [f"  VM{i}: {{underlay_ip: 192.0.{2 + i // 250}.{i % 250 + 1}}}" for i in range(1, peers + 2)]
    lines += ["ases:", "  1: {server: VM1, routers: [A]}"]
    lines += [f"  {i}: {{server: VM{i}, routers: [B]}}" for i in range(2, peers + 2)]
    lines += ["links:"]
    lines += [f"  - {{a: 1.A, b: {2 + (k % peers)}.B, rel: peer}}" for k in range(n)]
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


class Ovs:
    """ovsdb-server + ovs-vswitchd in their own namespace and directory."""

    def __init__(self, ns: str, d: Path):
        self.ns, self.dir = ns, d
        self.ns_made = False
        self.files = host.OvsFiles(str(d))

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        run("ip", "netns", "add", self.ns)
        self.ns_made = True
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        host.start_ovs(str(self.dir), names.exec_prefix("netns", self.ns), lambda argv: run(*argv))

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
        return pid_cpu(int(Path(self.files.pidfile("ovs-vswitchd")).read_text().strip()))

    def stop(self) -> None:
        host.stop_ovs(self.files)
        if self.ns_made:
            run("ip", "netns", "del", self.ns, check=False)
            self.ns_made = False


class Controller:
    """The bench controller process (bench/flow_sync_app.py) inside the namespace."""

    def __init__(self, ovs: Ovs, topo_path: Path, ofp_port: int, rest_port: int, timing: Path, log: Path):
        self.ovs, self.timing, self.log = ovs, timing, log
        self.ofp_port = ofp_port
        app = "bench.flow_sync_app"
        argv = [*names.exec_prefix("netns", ovs.ns), sys.executable, str(Path(__file__).resolve()), "_controller",
                "--topology", str(topo_path), "--ofp", f"127.0.0.1:{ofp_port}", "--rest", f"127.0.0.1:{rest_port}",
                "--log-file", str(log), "--app", app, "--state", str(log.with_name("controller-state.json"))]
        env = dict(os.environ, MNBENCH_TIMING=str(timing), PYTHONPATH=str(ROOT))
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

    def wait_listening(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited ({self.proc.returncode}); see {self.err.name}")
            out = run(*names.exec_prefix("netns", self.ovs.ns), "ss", "-Hltn", f"sport = :{self.ofp_port}").stdout
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
        host.stop_child(self.proc)
        self.err.close()


def free_ports(ns: str, n: int = 2) -> List[int]:
    code = ("import socket;s=[socket.socket() for _ in range(%d)];[x.bind(('127.0.0.1',0)) for x in s];"
            "print(' '.join(str(x.getsockname()[1]) for x in s))" % n)
    return [int(p) for p in run(*names.exec_prefix("netns", ns), sys.executable, "-c", code).stdout.split()]


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

def bench_links(n: int, mode: str, repeat: int, work: Path, profile_dir: Optional[Path], say) -> dict:
    tag = f"{mode}-{n}"
    topo_path = work / f"topo-{tag}.yaml"
    topo_path.write_text(topology_yaml(n, mode))
    topo = load_topology(str(topo_path))
    bridges = [b for b in topo.bridges.values() if b.server == "VM1"]
    flow_files, expected = {}, {}
    for b in bridges:
        flows = bridge_flows(topo, b, [topo.link(lid).ofport for lid in b.link_ids])
        flow_files[b.name] = work / f"flows-{tag}-{b.name}.txt"
        flow_files[b.name].write_text("".join(ofctl_flow(f) + "\n" for f in flows.values()))
        expected[b.name] = len(flows)
    total_flows = sum(expected.values())

    ovs = Ovs(f"{PREFIX}-{tag}"[:30], work / f"ovs-{tag}")
    controllers: List[Controller] = []
    spies: List[subprocess.Popen] = []
    result = {"links": n, "mode": mode, "bridges": len(bridges), "flows": total_flows}
    try:
        ovs.start()
        ofp_port, rest_port = free_ports(ovs.ns)
        # The bridges as provisioning makes them, each with only its tunnel port. The controller
        # target is set from the start and stays, as in real use: the bench restarts the controller
        # process, never the target (OvS flushes the table whenever a bridge goes from no controller
        # to one or back). While no controller process runs, the bridges are disconnected
        # (fail_mode=secure keeps their flows) and ovs-ofctl has them to itself. max_backoff=1000
        # only makes OvS retry a stopped controller every second instead of up to every 8 s.
        for i in range(0, len(bridges), 50):
            args: List[str] = []
            for b in bridges[i:i + 50]:
                args += ["--", "add-br", b.name, "--", "set", "bridge", b.name, "datapath_type=netdev",
                         "fail_mode=secure", "stp_enable=false", "protocols=OpenFlow13",
                         f"other-config:datapath-id={b.dpid:016x}", "other-config:disable-in-band=true",
                         "--", "set-controller", b.name, f"tcp:127.0.0.1:{ofp_port}",
                         "--", "set", "controller", b.name, "connection-mode=out-of-band", "max_backoff=1000",
                         "--", "add-port", b.name, b.tunnel_port, "--", "set", "interface", b.tunnel_port,
                         "type=gre", f"options:remote_ip={topo.servers[b.peer].underlay_ip}", "options:key=flow",
                         "ofport_request=1"]
            ovs.vsctl(*args)
        ofctl = ("ovs-ofctl", "-O", "OpenFlow13")
        timing = work / f"timing-{tag}.jsonl"
        log = work / f"controller-{tag}.log"

        def check_count(what):
            for b in bridges:
                got = ovs.flow_count(b.name)
                if got != expected[b.name]:
                    raise RuntimeError(f"{tag} {what}: {got} flows in {b.name}, expected {expected[b.name]}")

        def tables():
            return {b.name: ovs.table(b.name) for b in bridges}

        def timed(*args) -> dict:
            """ovs-ofctl on every bridge in turn: wall seconds (summed), and CPU seconds of ovs-ofctl
            plus ovs-vswitchd meanwhile."""
            wall, cpu = 0.0, 0.0
            for b in bridges:
                c0, v0, t0 = children_cpu(), ovs.vswitchd_cpu(), time.perf_counter()
                run(*ofctl, *args, ovs.mgmt(b.name), flow_files[b.name])
                wall += time.perf_counter() - t0
                cpu += children_cpu() - c0 + ovs.vswitchd_cpu() - v0
            return {"wall": wall, "cpu": cpu}

        def del_flows():
            for b in bridges:
                run(*ofctl, "del-flows", ovs.mgmt(b.name))

        def sync_once(fresh: bool, spy_out: Optional[Path] = None) -> dict:
            if fresh:
                del_flows()
            ctl = Controller(ovs, topo_path, ofp_port, rest_port, timing, log)
            controllers.append(ctl)
            spy = None
            try:
                ctl.wait_listening(120 + n / 500)
                if spy_out:
                    spy = start_pyspy(ctl.proc.pid, spy_out)
                if spy:
                    spies.append(spy)
                v0 = ovs.vswitchd_cpu()
                recs = [ctl.next_sync(60 + n / 100) for _ in bridges]   # OvS connects within a second
                vswitchd = ovs.vswitchd_cpu() - v0
                check_count("controller sync")
            finally:
                ctl.stop()
                controllers.remove(ctl)
            if spy:
                spy.wait(30)
                spies.remove(spy)
            errors = sum(r["switch_errors"] + r["handler_errors"] for r in recs)
            if errors:
                raise RuntimeError(f"{tag}: sync had {errors} OpenFlow or handler errors; see {log}")
            rec = {"total_s": max(r["t_end"] for r in recs) - min(r["t_start"] for r in recs),
                   "cpu_s": max(r["c_end"] for r in recs) - min(r["c_start"] for r in recs),
                   "flow_mods": sum(r["flow_mods"] for r in recs), "flows_read": sum(r["flows_read"] or 0 for r in recs),
                   "messages": recs[0]["messages"] if len(recs) == 1 else None,
                   "phases_s": recs[0]["phases_s"] if len(recs) == 1 else None,
                   "phases_cpu_s": recs[0]["phases_cpu_s"] if len(recs) == 1 else None}
            # the controller's CPU over the syncs, plus what ovs-vswitchd used from the moment the
            # controller listened (connection, handshake, the syncs themselves)
            rec["total_cpu_s"] = rec["cpu_s"] + vswitchd
            return rec

        # Warm-up, not compared: the first add-flows into a fresh bridge was at times 2-3x slower than
        # later ones, and every measured push below lands on a bridge that already held these flows.
        result["ovs_ofctl_first_add_flows_s"] = timed("add-flows")["wall"]
        check_count("ovs-ofctl add-flows (warm-up)")

        # Interleaved, so that load from elsewhere on the machine hits both sides alike.
        ref_add, ref_bundle, ref_noop, ours_add, ours_noop = [], [], [], [], []
        ref_tables = None
        for r in range(repeat):
            del_flows()
            ref_add.append(timed("add-flows"))
            check_count("ovs-ofctl add-flows")
            del_flows()
            ref_bundle.append(timed("--bundle", "add-flows"))
            check_count("ovs-ofctl --bundle add-flows")
            if r == 0:
                ref_tables = tables()
            ref_noop.append(timed("--bundle", "replace-flows"))
            check_count("ovs-ofctl --bundle replace-flows")

            ours_add.append(sync_once(fresh=True))
            if r == 0:
                if tables() != ref_tables:
                    raise RuntimeError(f"{tag}: the controller's tables differ from ovs-ofctl's")
                result["same_table_as_ovs_ofctl"] = True
            ours_noop.append(sync_once(fresh=False))
            if ours_noop[-1]["flow_mods"]:
                raise RuntimeError(f"{tag}: no-op resync sent {ours_noop[-1]['flow_mods']} FlowMods")
            say(f"{tag} run {r + 1}/{repeat}: initial ours {ours_add[-1]['total_s']:.3f}s vs ovs-ofctl --bundle "
                f"add-flows {ref_bundle[-1]['wall']:.3f}s (plain {ref_add[-1]['wall']:.3f}s); no-op ours "
                f"{ours_noop[-1]['total_s']:.3f}s vs --bundle replace-flows {ref_noop[-1]['wall']:.3f}s")

        med = statistics.median

        def med_phases(recs, key):
            if recs[0][key] is None:
                return None
            return {k: round(med(rec[key][k] for rec in recs), 4) for k in recs[0][key]}

        def ours(recs):
            return {"ours_s": med(rec["total_s"] for rec in recs), "ours_runs_s": [rec["total_s"] for rec in recs],
                    "ours_cpu_s": med(rec["cpu_s"] for rec in recs),
                    "ours_with_vswitchd_cpu_s": med(rec["total_cpu_s"] for rec in recs),
                    "phases_s": med_phases(recs, "phases_s"), "phases_cpu_s": med_phases(recs, "phases_cpu_s")}

        def ref(runs, prefix):
            return {f"{prefix}_s": med(x["wall"] for x in runs), f"{prefix}_runs_s": [x["wall"] for x in runs],
                    f"{prefix}_with_vswitchd_cpu_s": med(x["cpu"] for x in runs)}

        initial = dict(ours(ours_add), **ref(ref_bundle, "ovs_ofctl_bundle"), **ref(ref_add, "ovs_ofctl_plain"),
                       flow_mods=ours_add[0]["flow_mods"], messages=ours_add[0]["messages"])
        initial["ratio"] = initial["ours_s"] / initial["ovs_ofctl_bundle_s"]
        initial["ratio_vs_plain"] = initial["ours_s"] / initial["ovs_ofctl_plain_s"]
        initial["cpu_ratio"] = initial["ours_with_vswitchd_cpu_s"] / initial["ovs_ofctl_bundle_with_vswitchd_cpu_s"]
        noop = dict(ours(ours_noop), **ref(ref_noop, "ovs_ofctl_replace"), flows_read=ours_noop[0]["flows_read"],
                    flow_mods=max(rec["flow_mods"] for rec in ours_noop))
        noop["ratio"] = noop["ours_s"] / noop["ovs_ofctl_replace_s"]
        noop["cpu_ratio"] = noop["ours_with_vswitchd_cpu_s"] / noop["ovs_ofctl_replace_with_vswitchd_cpu_s"]
        result["initial"], result["noop"] = initial, noop

        if profile_dir is not None:
            prof = {}
            for what, fresh in (("initial", True), ("noop", False)):
                raw = profile_dir / f"profile-{tag}-{what}.txt"
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
                host.stop_processes([spy.pid], 10.0)
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
    print("wall s: median of the runs; ratio: ours / ovs-ofctl --bundle (add-flows, replace-flows)")
    print(f"{'mode':<4} {'N':>6} {'bridges':>7} {'flows':>7}  {'initial':>8} {'--bundle add':>12} {'ratio':>6}"
          f" {'plain add':>9}  {'no-op':>7} {'--bundle replace':>16} {'ratio':>6}")
    for r in results:
        i, o = r["initial"], r["noop"]
        print(f"{r['mode']:<4} {r['links']:>6} {r['bridges']:>7} {r['flows']:>7}  {i['ours_s']:>8.3f} "
              f"{i['ovs_ofctl_bundle_s']:>12.3f} {i['ratio']:>6.2f} {i['ovs_ofctl_plain_s']:>9.3f}  "
              f"{o['ours_s']:>7.3f} {o['ovs_ofctl_replace_s']:>16.3f} {o['ratio']:>6.2f}")
    for r in results:
        for k, label in (("initial", "initial"), ("noop", "no-op")):
            m = r[k]
            if m["phases_s"]:
                print(f"{r['mode']} N={r['links']}: {label} phases, median s (controller CPU s): "
                      + ", ".join(f"{p} {v:.3f} ({m['phases_cpu_s'][p]:.3f})" for p, v in m["phases_s"].items()))


def plot(results: List[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    modes = sorted({r["mode"] for r in results})
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.2), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rs = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["links"])
        x = [r["links"] for r in rs]
        for key, field, label, style in (
                ("initial", "ours_s", "controller: initial push (bundle)", "o-"),
                ("initial", "ovs_ofctl_bundle_s", "ovs-ofctl --bundle add-flows", "o--"),
                ("initial", "ovs_ofctl_plain_s", "ovs-ofctl add-flows", "o:"),
                ("noop", "ours_s", "controller: no-op resync", "s-"),
                ("noop", "ovs_ofctl_replace_s", "ovs-ofctl --bundle replace-flows", "s--")):
            ax.plot(x, [r[key][field] for r in rs], style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("remote links")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"flow sync, isolation {mode}" + (" (63 links per bridge)" if mode == "tos" else " (one bridge)"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_controller"]:
        return controller_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--links", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--modes", nargs="+", default=["key"], choices=["key", "tos"])
    p.add_argument("--tos-max", type=int, default=None, metavar="N",
                   help="skip tos mode above N links (it needs one bridge per 63 links)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--profile", action="store_true", help="py-spy the controller at the largest N")
    p.add_argument("--plot", metavar="PNG", help="draw the scale curve (matplotlib) into this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, flow files)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("flow_sync.py: needs root (namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    for tool in ("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-vsctl", "ip", "ss"):
        if not shutil.which(tool):
            print(f"flow_sync.py: {tool} not found", file=sys.stderr)
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
        for mode in args.modes:
            for n in args.links:
                if mode == "tos" and args.tos_max is not None and n > args.tos_max:
                    continue
                last = n == max(args.links) and mode == args.modes[0]
                results.append(bench_links(n, mode, args.repeat, work, profile_dir if last else None, say))
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
           "repeat": args.repeat, "statistic": "median",
           "target": f"ours <= {TARGET_RATIO}x ovs-ofctl --bundle add-flows (initial) and --bundle replace-flows "
                     "(no-op) at 10000 links",
           "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                    "ovs": run("ovs-vsctl", "--version").stdout.split("\n")[0],
                    "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
           "wall_s": round(time.monotonic() - started, 1), "results": results}
    big = [r for r in results if r["links"] == 10000 and r["mode"] == "key"]
    if big:
        out["target_met"] = {k: big[0][k]["ratio"] <= TARGET_RATIO for k in ("initial", "noop")}
    path = results_dir / f"flow_sync-{stamp}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    if args.plot:
        plot(results, Path(args.plot))
        say(f"plot: {args.plot}")
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print_table(results)
        if big:
            print(f"targets at 10000 links (key): initial <= {TARGET_RATIO}x --bundle add-flows: "
                  f"{'met' if out['target_met']['initial'] else 'MISSED'} (x{big[0]['initial']['ratio']:.2f}); "
                  f"no-op <= {TARGET_RATIO}x --bundle replace-flows: "
                  f"{'met' if out['target_met']['noop'] else 'MISSED'} (x{big[0]['noop']['ratio']:.2f})")
        print(f"saved {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
