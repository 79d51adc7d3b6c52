"""What the benches measure on the machine, read from /proc and /sys: memory in use, PSS and CPU per
process kind, the kernel's page merging, and what the machine is. Standard library only: bench/versus_ipmininet.py also runs it in the
peer's venv, where minet-sdn is not installed."""
from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

KSM = "/sys/kernel/mm/ksm"
KSM_RATE_RECORD = "/run/minet-ksm/rate"      # minet_sdn.host.KSM_STATE: the rate provisioning raised


class MemSampler:
    """MemAvailable once a second in a thread: the drop against the value at start, in MB."""

    def __init__(self) -> None:
        self.base = self._avail()
        self.samples: List[Tuple[float, float]] = []      # (seconds since start, MB in use)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _avail() -> float:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(1.0):
            self.samples.append((time.monotonic() - t0, self.base - self._avail()))

    def now(self) -> float:
        return self.base - self._avail()

    def peak(self) -> float:
        return max((v for _, v in self.samples), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def machine() -> Dict[str, Any]:
    """What a result file says of the machine that produced it."""
    def version(argv: List[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return "?"
        return (out.splitlines() or ["?"])[0].strip()
    return {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
            "loadavg": os.getloadavg(), "python": platform.python_version(),
            "ovs": version(["ovs-vswitchd", "--version"]),
            "frr": version(["/usr/lib/frr/bgpd", "--version"])}


def smaps_rollup(pid: int) -> Optional[Tuple[int, int]]:
    """(PSS, RSS) of `pid` in kB, or None when it is gone or has no memory (a zombie)."""
    vals: Dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] in ("Pss:", "Rss:"):
                    vals[parts[0]] = int(parts[1])
    except (OSError, ValueError):
        return None
    if "Pss:" not in vals:
        return None
    return vals["Pss:"], vals.get("Rss:", 0)


def pss_by_comm(pids: Dict[int, str], only: Optional[Tuple[str, ...]] = None) -> Dict[str, Dict[str, float]]:
    """{comm: {"n", "pss_mb" (average), "rss_mb" (average), "total_mb" (PSS)}} over `pids` (pid ->
    comm), only the commands in `only` when given."""
    acc: Dict[str, List[Tuple[int, int]]] = {}
    for pid, comm in pids.items():
        if only is not None and comm not in only:
            continue
        mem = smaps_rollup(pid)
        if mem is not None:
            acc.setdefault(comm, []).append(mem)
    return {c: {"n": len(v), "pss_mb": round(sum(p for p, _ in v) / len(v) / 1024, 2),
                "rss_mb": round(sum(r for _, r in v) / len(v) / 1024, 2),
                "total_mb": round(sum(p for p, _ in v) / 1024, 1)} for c, v in sorted(acc.items())}


def process_ticks(pid: int) -> Optional[int]:
    """User + system CPU ticks of `pid`, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(") ", 1)[1].split()
        return int(f[11]) + int(f[12])
    except (OSError, IndexError, ValueError):
        return None


def ksmd_ticks() -> Optional[int]:
    """CPU ticks of the kernel's ksmd thread (a child of kthreadd, pid 2), None without KSM."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    head, rest = fh.read().rsplit(") ", 1)
                f = rest.split()
                if head.endswith("(ksmd") and f[1] == "2":
                    return int(f[11]) + int(f[12])
            except (OSError, IndexError, ValueError):
                pass
    return None


def machine_busy() -> Tuple[int, int]:
    """(busy, total) ticks of the whole machine since boot."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)


def cpu_share(pids: Callable[[], Dict[int, str]], seconds: float, with_ksmd: bool = True) -> Dict[str, Any]:
    """CPU of the processes `pids()` names (pid -> kind), plus ksmd's when `with_ksmd`, over `seconds`:
    {pct: their sum, machine_pct: the whole machine busy, by_process: kind -> pct}, all as % of the
    whole machine (every core)."""
    hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1

    def ticks() -> Dict[Tuple[int, str], int]:
        out = {}
        for pid, comm in pids().items():
            t = process_ticks(pid)
            if t is not None:
                out[(pid, comm)] = t
        k = ksmd_ticks() if with_ksmd else None
        if k is not None:
            out[(0, "ksmd")] = k
        return out

    a, (b0, t0), s0 = ticks(), machine_busy(), time.monotonic()
    time.sleep(seconds)
    b, (b1, t1), dt = ticks(), machine_busy(), time.monotonic() - s0
    per: Dict[str, float] = {}
    for k, v in b.items():
        if k in a:
            per[k[1]] = per.get(k[1], 0.0) + (v - a[k]) / hz / dt / ncpu * 100
    return {"pct": round(sum(per.values()), 2), "machine_pct": round(100 * (b1 - b0) / max(1, t1 - t0), 1),
            "by_process": {k: round(v, 2) for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.01}}


def ksm_counters() -> Optional[Dict[str, int]]:
    """full_scans, pages_sharing, pages_shared of KSM; None when KSM is not running."""
    try:
        with open(f"{KSM}/run") as fh:
            if fh.read().strip() != "1":
                return None
        out = {}
        for k in ("full_scans", "pages_sharing", "pages_shared"):
            with open(f"{KSM}/{k}") as fh:
                out[k] = int(fh.read())
        return out
    except (OSError, ValueError):
        return None


def ksm_settle(timeout: float = 900.0) -> Optional[Dict[str, Any]]:
    """With KSM on: wait until a whole scan of ksmd merged less than 1 % more pages than the one
    before. {seconds, full_scans, pages_sharing, pages_shared}, None without KSM."""
    c = ksm_counters()
    if c is None:
        return None
    t0 = time.monotonic()
    last_scan, last_sharing = c["full_scans"], c["pages_sharing"]
    while time.monotonic() - t0 < timeout:
        time.sleep(2)
        c = ksm_counters() or c
        if c["full_scans"] > last_scan:
            grown = c["pages_sharing"] - last_sharing
            last_scan, last_sharing = c["full_scans"], c["pages_sharing"]
            if c["pages_sharing"] and grown < 0.01 * c["pages_sharing"]:
                break
    # provisioning leaves a waiter that puts ksmd's scan rate back once merging settled, by the same
    # test (host.calm_when_merged, polling every 5 s): steady state is after it did
    t1 = time.monotonic()
    while os.path.exists(KSM_RATE_RECORD) and time.monotonic() - t1 < 60:
        time.sleep(1)
    return {"seconds": round(time.monotonic() - t0, 1), **c, **ksm_rate()}


def ksm_rate() -> Dict[str, Any]:
    """ksmd's scan rate now: {pages_to_scan, sleep_millisecs} (empty without KSM)."""
    out: Dict[str, Any] = {}
    for k in ("pages_to_scan", "sleep_millisecs"):
        try:
            with open(f"{KSM}/{k}") as fh:
                out[k] = int(fh.read())
        except (OSError, ValueError):
            pass
    return out
