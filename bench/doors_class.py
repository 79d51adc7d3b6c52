#!/usr/bin/env python3
"""Students' doors at class size: 58 groups of the 60-AS class logged in at once, each running
vtysh commands, through real sshd and the real OpenSSH client.

    sudo python3 bench/doors_class.py [--ases 60] [--servers 4] [--groups 58] [--duration 60]
                                      [--think 1.0] [--samples 10]

The class-size run (about 8 minutes on 2 cores: lab up ~2-3 min, 58 logins, 60 s of load, lab down):
    flock /work/heavy.lock timeout -s INT 900 python3 bench/doors_class.py --ases 60 --groups 58
A small run to check the bench itself (under a minute of load, ~1.5 min in all):
    flock /work/heavy.lock python3 bench/doors_class.py --ases 6 --groups 4 --duration 20 --samples 3

Needs root, Open vSwitch, FRR, sshd, the OpenSSH client and pexpect. A class topology
(minet_sdn/topology/generate.py: N ASes x 8 routers on 4 emulated servers) gets a `class:` section
giving doors to `--groups` ASes (all but the first ones); `minet lab up`, then:

  reference   one group alone (the "idle" group): its login time, and `goto ROUTER` + `show bgp
              summary` + `exit` back at the door, --samples times
  load        every other group logs in at once (one ssh client each, in parallel), enters its
              first router and runs vtysh commands (`show bgp summary`, `show ip route summary`,
              `show running-config`, in turn) with --think seconds between them, for --duration
              seconds after the last login; meanwhile the idle group (also logged in) measures the
              same goto + show + exit --samples times
  figures     login time p50/p95 (connect to the door's prompt, password typed at ssh's prompt),
              vtysh command round trip p50/p95 of the busy groups, the idle group's goto latency
              p50/p95 under load and its ratio to the reference (same run), the machine's CPU busy
              share and MemAvailable drop during the load (against before the logins), the groups'
              cgroup memory (every door shell and device session of every group) and CPU

The lab is taken down at the end and checked to leave nothing. Results: bench/results/doors_class-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import lab_up as common                              # noqa: E402  (machine, save, check_root, leftovers)
from sampling import process_ticks                   # noqa: E402
from minet_sdn.lab import quiet                      # noqa: E402
from minet_sdn.lab.lab import Lab                    # noqa: E402
from minet_sdn.topology import load_topology         # noqa: E402
from minet_sdn.topology.generate import class_topology  # noqa: E402

COMMANDS = ("show bgp summary", "show ip route summary", "show running-config")


def pct(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(round(q * (len(v) - 1))))], 4)


def summary(values: List[float]) -> Dict[str, Optional[float]]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95),
            "max": round(max(values), 4) if values else None,
            "mean": round(statistics.mean(values), 4) if values else None}


def cpu_times() -> List[int]:
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:]]


def busy_share(a: List[int], b: List[int]) -> float:
    d = [y - x for x, y in zip(a, b)]
    idle = d[3] + (d[4] if len(d) > 4 else 0)
    return round(1 - idle / max(1, sum(d)), 3)


def mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def groups_cgroup(tag: str) -> Dict[str, Optional[float]]:
    """Memory (bytes) and CPU time (s) of every group's cgroup together (v1 or v2), best effort."""
    out: Dict[str, Optional[float]] = {"memory_bytes": None, "cpu_s": None}
    for path, key, scale in ((f"/sys/fs/cgroup/memory/minet-{tag}/memory.usage_in_bytes", "memory_bytes", 1),
                             (f"/sys/fs/cgroup/minet-{tag}/memory.current", "memory_bytes", 1),
                             (f"/sys/fs/cgroup/cpuacct/minet-{tag}/cpuacct.usage", "cpu_s", 1e-9),
                             (f"/sys/fs/cgroup/cpu,cpuacct/minet-{tag}/cpuacct.usage", "cpu_s", 1e-9)):
        if out[key] is None:
            try:
                with open(path) as fh:
                    out[key] = int(fh.read().split()[0]) * scale
            except (OSError, ValueError, IndexError):
                pass
    if out["cpu_s"] is None:
        try:
            with open(f"/sys/fs/cgroup/minet-{tag}/cpu.stat") as fh:
                for line in fh:
                    if line.startswith("usage_usec"):
                        out["cpu_s"] = int(line.split()[1]) / 1e6
        except OSError:
            pass
    return out


def group_pids(tag: str) -> List[int]:
    """Every process in the groups' cgroups (v2, or v1's pids hierarchy)."""
    pids: List[int] = []
    for parent in (f"/sys/fs/cgroup/minet-{tag}", f"/sys/fs/cgroup/pids/minet-{tag}"):
        try:
            groups = [g for g in os.listdir(parent) if g.startswith("as")]
        except OSError:
            continue
        for g in groups:
            try:
                with open(os.path.join(parent, g, "cgroup.procs")) as fh:
                    pids += [int(x) for x in fh.read().split()]
            except (OSError, ValueError):
                pass
    return pids


def ticks(pids: List[int]) -> Dict[int, int]:
    out = {}
    for pid in pids:
        t = process_ticks(pid)
        if t is not None:
            out[pid] = t
    return out


def cpu_used(before: Dict[int, int], after: Dict[int, int]) -> float:
    """CPU seconds of the processes alive at the end (all of it for those started since)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / os.sysconf("SC_CLK_TCK")


def broker_pid(instance: str) -> Optional[int]:
    from minet_sdn.classroom import doors
    try:
        with open(os.path.join(doors.run_dir(instance), "state.json")) as fh:
            return int(json.load(fh)["broker"]["pid"])
    except (OSError, ValueError, KeyError):
        return None


class Session:
    """One group's login through its door (the real ssh client in a pseudo-terminal)."""

    def __init__(self, door: Dict, known_hosts: str, router: str):
        import pexpect
        self.pexpect = pexpect
        self.door, self.router = door, router
        self.prompt = f"AS{door['group']}> "
        self.vty = f"AS{door['group']}-{router}# "
        t0 = time.monotonic()
        self.child = pexpect.spawn("ssh", ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
                                           "-o", "GlobalKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                                           "-o", "NumberOfPasswordPrompts=1", "-p", str(door["port"]),
                                           f"{door['user']}@{door['address']}"],
                                   encoding="utf-8", timeout=300, dimensions=(50, 200))
        self.child.expect("password:")
        self.child.sendline(door["password"])
        self.child.expect(self.prompt)
        self.login_s = time.monotonic() - t0

    def timed(self, line: str, prompt: str) -> float:
        t0 = time.monotonic()
        self.child.sendline(line)
        self.child.expect(prompt)
        return time.monotonic() - t0

    def goto_show_exit(self) -> float:
        """`goto ROUTER`, `show bgp summary`, `exit` back at the door: what a student waits for."""
        t0 = time.monotonic()
        self.child.sendline(f"goto {self.router}")
        self.child.expect(self.vty)
        self.child.sendline("show bgp summary")
        self.child.expect(self.vty)
        self.child.sendline("exit")
        self.child.expect(self.prompt)
        return time.monotonic() - t0

    def close(self) -> None:
        try:
            self.child.sendline("exit")
            self.child.expect(self.pexpect.EOF, timeout=30)
        except Exception:
            pass
        self.child.close(force=True)


def busy_group(door, known_hosts, router, think, stop, logged_in, out, errors):
    try:
        s = Session(door, known_hosts, router)
    except Exception as exc:
        errors.append(f"AS{door['group']} login: {type(exc).__name__}: {str(exc)[:120]}")
        logged_in.release()
        return
    out["logins"].append(s.login_s)
    logged_in.release()
    try:
        s.timed(f"goto {router}", s.vty)
        n = 0
        while not stop.is_set():
            out["commands"].append(s.timed(COMMANDS[n % len(COMMANDS)], s.vty))
            n += 1
            stop.wait(think)
        s.timed("exit", s.prompt)
    except Exception as exc:
        errors.append(f"AS{door['group']} vtysh: {type(exc).__name__}: {str(exc)[:120]}")
    finally:
        s.close()


def run(args) -> Dict:
    common.check_root()
    tmp = tempfile.mkdtemp(prefix="doors-class-")
    os.environ["MINET_CLASS_DIR"] = os.path.join(tmp, "class")
    name = f"dc{secrets.token_hex(2)}"
    text = class_topology(args.ases, args.servers, name=name)
    first = args.ases - args.groups + 1
    base = 20000 + secrets.randbelow(20000)
    text += f"class: {{doors: [{', '.join(str(a) for a in range(first, args.ases + 1))}], port_base: {base}}}\n"
    path = os.path.join(tmp, "class.yaml")
    with open(path, "w") as fh:
        fh.write(text)
    topo = load_topology(path)
    result: Dict = {"benchmark": "doors_class", "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "command": "sudo python3 bench/doors_class.py " + " ".join(sys.argv[1:]),
                    "host": common.machine(), "ases": args.ases, "servers": args.servers,
                    "routers": len(topo.routers), "groups": args.groups, "duration_s": args.duration,
                    "think_s": args.think}
    lab = Lab(path, progress=quiet)
    t0 = time.monotonic()
    try:
        lab.up()
        result["lab_up_s"] = round(time.monotonic() - t0, 1)
        from minet_sdn.classroom import cli as class_cli, credentials
        doors = class_cli.listing(topo, credentials.Store(topo.name), lab=True)
        known_hosts = os.path.join(tmp, "known_hosts")
        with open(known_hosts, "w") as fh:
            fh.write("".join(d["known_hosts"] + "\n" for d in doors))
        router = {d["group"]: topo.ases[d["group"]].routers[0] for d in doors}
        idle_door, busy_doors = doors[-1], doors[:-1]
        print(f"lab up in {result['lab_up_s']} s; {len(doors)} doors", flush=True)

        # reference: the idle group alone
        time.sleep(5)
        idle = Session(idle_door, known_hosts, router[idle_door["group"]])
        result["reference"] = {"login_s": round(idle.login_s, 4),
                               "goto_show_exit_s": summary([idle.goto_show_exit() for _ in range(args.samples)])}
        print(f"reference: login {idle.login_s:.2f} s, goto+show+exit p50 "
              f"{result['reference']['goto_show_exit_s']['p50']} s", flush=True)

        # load: every other group at once
        mem0, cg0 = mem_available(), groups_cgroup(topo.tag)
        stop = threading.Event()
        logged_in = threading.Semaphore(0)
        out: Dict[str, List[float]] = {"logins": [], "commands": []}
        errors: List[str] = []
        threads = [threading.Thread(target=busy_group, daemon=True,
                                    args=(d, known_hosts, router[d["group"]], args.think, stop, logged_in, out, errors))
                   for d in busy_doors]
        t_login = time.monotonic()
        for t in threads:
            t.start()
        for _ in threads:
            logged_in.acquire()
        result["all_logged_in_s"] = round(time.monotonic() - t_login, 2)
        print(f"{len(out['logins'])} groups logged in within {result['all_logged_in_s']} s "
              f"({len(errors)} failed)", flush=True)
        broker = broker_pid(topo.name)
        cpu_a, cg_a, t_a = cpu_times(), groups_cgroup(topo.tag), time.monotonic()
        g_a, b_a = ticks(group_pids(topo.tag)), process_ticks(broker) if broker else None
        mem_min = mem_available()
        loaded = []
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline or len(loaded) < args.samples:
            loaded.append(idle.goto_show_exit())
            mem_min = min(mem_min, mem_available())
            time.sleep(max(0.0, min(2.0, deadline - time.monotonic())))
        cpu_b, cg_b, t_b = cpu_times(), groups_cgroup(topo.tag), time.monotonic()
        g_b, b_b = ticks(group_pids(topo.tag)), process_ticks(broker) if broker else None
        mem_min = min(mem_min, mem_available())
        n_commands = len(out["commands"])
        stop.set()
        for t in threads:
            t.join(timeout=120)
        idle.close()
        ref = result["reference"]["goto_show_exit_s"]["p50"]
        under = summary(loaded)
        cg_cpu = (cg_b["cpu_s"] - cg_a["cpu_s"]) if cg_a["cpu_s"] is not None and cg_b["cpu_s"] is not None else None
        result["load"] = {
            "groups_logged_in": len(out["logins"]) + 1, "busy_groups": len(out["logins"]),
            "login_s": summary(out["logins"]), "vtysh_command_s": summary(out["commands"]),
            "vtysh_commands_per_s": round(n_commands / max(1e-9, t_b - t_a), 1),
            "idle_goto_show_exit_s": under,
            "idle_ratio_p50": round(under["p50"] / ref, 2) if ref else None,
            "machine_cpu_busy": busy_share(cpu_a, cpu_b),
            "groups_cgroup_cpu_share": round(cg_cpu / (t_b - t_a) / (os.cpu_count() or 1), 3) if cg_cpu else None,
            # the groups' processes (door shells, sandboxes relaying vtysh, vtysh) against the broker's:
            # shares of the machine's CPU during the load
            "groups_processes_cpu_share": round(cpu_used(g_a, g_b) / (t_b - t_a) / (os.cpu_count() or 1), 3),
            "broker_cpu_share": (round((b_b - b_a) / os.sysconf("SC_CLK_TCK") / (t_b - t_a) / (os.cpu_count() or 1), 4)
                                 if b_a is not None and b_b is not None else None),
            "mem_available_drop_mb": round((mem0 - mem_min) / 2**20, 1),
            "groups_cgroup_memory_mb": round(cg_b["memory_bytes"] / 2**20, 1) if cg_b["memory_bytes"] else None,
            "groups_cgroup_memory_before_mb": round(cg0["memory_bytes"] / 2**20, 1) if cg0["memory_bytes"] else None,
            "errors": errors[:10], "n_errors": len(errors)}
    finally:
        t1 = time.monotonic()
        problems = Lab(path, progress=quiet).remove()
        result["lab_down_s"] = round(time.monotonic() - t1, 1)
        result["left"] = common.leftovers(topo) + list(problems or [])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ases", type=int, default=60)
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--groups", type=int, default=58, help="ASes with a door (the last ones); one is the idle group")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load after the last login")
    ap.add_argument("--think", type=float, default=1.0, help="seconds between a busy group's vtysh commands")
    ap.add_argument("--samples", type=int, default=10, help="goto+show+exit measurements, alone and under load")
    args = ap.parse_args()
    result = run(args)
    path = common.save("doors_class", result)
    load = result.get("load", {})
    print(json.dumps({k: load.get(k) for k in ("groups_logged_in", "login_s", "vtysh_command_s",
                                               "idle_goto_show_exit_s", "idle_ratio_p50", "machine_cpu_busy",
                                               "groups_processes_cpu_share", "broker_cpu_share",
                                               "mem_available_drop_mb", "groups_cgroup_memory_mb", "n_errors")},
                     indent=1))
    print(f"saved {path}")
    return 0 if load and not result["left"] else 1


if __name__ == "__main__":
    sys.exit(main())
