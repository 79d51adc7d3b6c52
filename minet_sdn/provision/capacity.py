"""What a topology needs on a machine (pure, plus two readers of /proc), and whether it fits.

Memory is estimated as PSS (proportional set size: FRR's shared libraries are counted once, split
over the processes that map them, unlike RSS) per FRR daemon, as measured on the project's machine
kind (Debian 12, FRR 8.4.4, `--limit-fds 1024`) with bench/lab_up.py on a 20 x 8 class lab, plus
what the kernel spends per router and its host (two namespaces, veths, sockets, page tables:
the drop of MemAvailable minus the PSS of the lab's processes, same run), plus each server's Open
vSwitch and sshd. The estimate is used twice: `minet-provision` checks its own server's part
before building anything (so `--master` on real servers checks every server on itself), and
`minet lab up` checks the whole topology against this one machine, which holds every server.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

# PSS per daemon in MB, measured on the dual-stack 60 x 8 class lab (480 routers, FRR_MALLOC_ENV,
# 2026-12-02 15:06 UTC); bgpd's is the average over reflectors (7 iBGP sessions per family) and
# clients (2 per family) with IPv4 and IPv6 sessions: an IPv4-only router's bgpd is about 3 MB
# less (10.7 MB in the IPv4-only 20 x 8 lab before the malloc settings), so the estimate errs high.
DAEMON_PSS_MB: Dict[str, float] = {"zebra": 5.4, "bgpd": 13.3, "ospfd": 3.7, "staticd": 2.1,
                                 "ospf6d": 3.3}
# The same with fabric.share_memory (KSM, ASLR off: host.page_merging), after merging settled: the
# dual-stack 60 x 8 class lab, bench/lab_up.py --class 60, 2026-12-02 18:20 UTC (bgpd 1.96, zebra 1.26,
# ospfd 0.72, ospf6d 0.73, staticd 0.50 MB), rounded up. The kernel's share grows by KSM's own
# bookkeeping (about 64 bytes per scanned page): MemAvailable dropped 8.8 MB per router, PSS was 4.7.
SHARED_DAEMON_PSS_MB: Dict[str, float] = {"zebra": 1.4, "bgpd": 2.2, "ospfd": 0.8, "staticd": 0.6,
                                        "ospf6d": 0.8}
SHARED_KERNEL_MB_PER_ROUTER = 4.2
DAEMON_THREADS: Dict[str, int] = {"zebra": 4, "bgpd": 4, "ospfd": 1, "staticd": 1, "ospf6d": 1}   # as counted in /proc
KERNEL_MB_PER_ROUTER = 3.5       # router + host namespaces, veths, sockets, page tables (measured 2.3-2.9
                                 # IPv4-only, 3.4 dual stack at 60 x 8: MemAvailable drop minus PSS)
SERVER_MB = 60.0                 # ovsdb-server, ovs-vswitchd, sshd of one (emulated) server
HEADROOM = 0.8                   # use at most this share of what the machine has available
CHECK_ENV = "MINET_CAPACITY_CHECK"   # "0" turns the check off


@dataclass(frozen=True)
class Estimate:
    routers: int
    processes: int
    threads: int
    memory_mb: float
    per_router_mb: float
    shared: bool = False

    def line(self) -> str:
        return (f"{self.routers} routers, {self.processes} processes, about {self.memory_mb / 1024:.1f} GiB "
                f"({self.per_router_mb:.1f} MB per router{', pages shared' if self.shared else ''})")


def estimate(daemon_lists: Iterable[Sequence[str]], servers: int = 1, shared: bool = False) -> Estimate:
    """The need of routers running these daemon lists (one list per router) on `servers` servers;
    `shared`: their pages are merged (fabric.share_memory where KSM works). The memory is then what
    they hold once merged: the start-up peak before merging is kept within the machine by
    provisioning, which holds back routers while memory is short (apply.MEMORY_LOW_MB)."""
    per_daemon = SHARED_DAEMON_PSS_MB if shared else DAEMON_PSS_MB
    kernel = SHARED_KERNEL_MB_PER_ROUTER if shared else KERNEL_MB_PER_ROUTER
    routers = processes = threads = 0
    mb = 0.0
    for daemons in daemon_lists:
        routers += 1
        processes += len(daemons)
        threads += sum(DAEMON_THREADS.get(d, 4) for d in daemons)
        mb += sum(per_daemon.get(d, 5.0 if not shared else 2.0) for d in daemons) + kernel
    total = mb + SERVER_MB * servers
    return Estimate(routers, processes + 3 * servers, threads + 10 * servers, round(total, 1),
                    round(mb / routers, 1) if routers else 0.0, shared)


def refusal(need: Estimate, available_mb: Optional[float], free_pids: Optional[int],
            where: str = "this machine") -> Optional[str]:
    """Why `need` does not fit (None if it does): memory beyond HEADROOM of what is available, or
    more processes than pids left."""
    if available_mb is not None and need.memory_mb > HEADROOM * available_mb:
        return (f"the topology needs {need.line()}, but {where} has {available_mb / 1024:.1f} GiB available "
                f"(at most {HEADROOM:.0%} of it is used); free memory, use more servers, or set {CHECK_ENV}=0 "
                "to try anyway")
    if free_pids is not None and need.threads > free_pids:
        return (f"the topology needs {need.processes} processes ({need.threads} threads), but {where} has only "
                f"{free_pids} pids left "
                f"(kernel.pid_max / threads-max); set {CHECK_ENV}=0 to try anyway")
    return None


def enabled(env: Optional[Dict[str, str]] = None) -> bool:
    env = os.environ if env is None else env
    return env.get(CHECK_ENV, "1") not in ("0", "no", "false")


def available_mb(meminfo: str = "/proc/meminfo") -> Optional[float]:
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def free_pids() -> Optional[int]:
    """Pids (threads count) left before kernel.pid_max or threads-max."""
    try:
        limits = []
        for path in ("/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"):
            with open(path) as fh:
                limits.append(int(fh.read().strip()))
        with open("/proc/loadavg") as fh:
            running = int(fh.read().split()[3].split("/")[1])    # scheduling entities (threads) now
    except (OSError, ValueError, IndexError):
        return None
    return min(limits) - running


def sharing(routers, merges_pages: bool) -> bool:
    """Whether these plan routers' pages will be merged: fabric.share_memory, a backend whose FRR
    inherits our KSM opt-in, and a kernel where it works (host.page_merging_unavailable)."""
    import shutil
    from .. import host
    return (merges_pages and any(r.share_memory for r in routers) and shutil.which("setarch") is not None
            and host.page_merging_unavailable() is None)


def topology_daemon_lists(plans) -> Tuple[Tuple[str, ...], ...]:
    """One daemon list per router of these plans."""
    return tuple(r.daemons for plan in plans for r in plan.routers)
