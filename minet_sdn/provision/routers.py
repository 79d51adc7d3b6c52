"""The FRR steps of provisioning (a part of provision/apply.py's Provisioner): configuration
directories and files, daemons stopped when unneeded or restarted for a new configuration, and
start-up of many routers at a time (memory sharing, waiting for memory, readiness, failures
summed up in one line).

`RouterSteps` is a mixin: the Provisioner holds `plan`, `backend`, `frr_dir`, `_identities`,
`_lock`, `_merging`, `_memory_note` and the journal (provision/journal.py).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .. import host
from . import capacity
from .frr import ALL_DAEMONS
from .journal import ProvisionError, _remove
from .netns import stop_processes
from .plan import Router

# Start-up of FRR: each daemon gets DAEMON_READY_TIMEOUT seconds from its own start to be ready
# ($MINET_FRR_READY_TIMEOUT); routers start `start_jobs()` at a time ($MINET_FRR_JOBS, default: the
# number of CPUs); after FAIL_STOP failures on a server the remaining routers are not tried.
DAEMON_READY_TIMEOUT = float(os.environ.get("MINET_FRR_READY_TIMEOUT") or 60.0)
FAIL_STOP = 20
# With page merging on (fabric.share_memory), a router's memory is shared only once ksmd has scanned
# it, a minute or more after it started at class size: starting routers faster than ksmd merges them
# would need the unmerged peak, which a big topology may not have. So while merging is on, a router
# waits to start while MemAvailable is under MEMORY_LOW_MB (ksmd keeps freeing it), at most
# MEMORY_WAIT seconds; then it fails with that reason, and the run rolls back.
MEMORY_LOW_MB = float(os.environ.get("MINET_MEMORY_LOW_MB") or 1536.0)
MEMORY_WAIT = 300.0
PROGRESS_EVERY = 5.0
FRR_RUN_DIR = "/var/run/frr"


def start_jobs(env: Optional[Dict[str, str]] = None, cpus: Optional[int] = None) -> int:
    """How many routers one server starts at a time: $MINET_FRR_JOBS, else its CPU count (at least 2)."""
    env = os.environ if env is None else env
    try:
        n = int(env.get("MINET_FRR_JOBS") or 0)
    except ValueError:
        n = 0
    return n if n > 0 else max(2, cpus or os.cpu_count() or 1)


@dataclass(frozen=True)
class DaemonFailure:
    router: str
    daemon: str
    why: str
    tried: bool = True        # False: never started (zebra failed, or too many failures before)


def summarise_failures(failures: List[DaemonFailure], total: int, log_path: str) -> str:
    """One line: '57 of 120 daemons did not start: ospfd (41), bgpd (16); first: router 16.VIEN
    ospfd: <why>; full list in <path>' (daemons never tried are counted apart)."""
    tried = [f for f in failures if f.tried]
    skipped = len(failures) - len(tried)
    counts: Dict[str, int] = {}
    for f in tried:
        counts[f.daemon] = counts.get(f.daemon, 0) + 1
    by = ", ".join(f"{d} ({n})" for d, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    first = tried[0] if tried else failures[0]
    line = f"{len(tried)} of {total} daemons did not start: {by or 'none'}"
    if skipped:
        line += f" ({skipped} more not started after that)"
    why = " ".join(first.why.split())
    why = why if len(why) <= 300 else why[:297] + "..."
    return f"{line}; first: router {first.router} {first.daemon}: {why}; full list in {log_path}"


# The kernel's neighbour (ARP / NDP) tables are one per machine, shared by every namespace, with
# the limits of the initial namespace (gc_thresh3 = 1024 by default). Each router holds about ten
# entries (ring and host neighbours, eBGP peers, and one per multicast group it sends to, e.g.
# OSPF's 224.0.0.5 on each ring link). At ~330 routers the table overflowed ("neighbor table
# overflow!"), multicast sends failed (IpOutDiscards), OSPF hellos went missing and adjacencies
# cycled. Provisioning raises the limits (never lowers them) before starting FRR.
NEIGH_PER_ROUTER = 16
NEIGH_SYSCTLS = ("/proc/sys/net/ipv4/neigh/default", "/proc/sys/net/ipv6/neigh/default")


def neighbour_limits(routers: int, current: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """(gc_thresh2, gc_thresh3) for `routers` routers on this kernel, None if `current` suffices."""
    want3 = 1024 + NEIGH_PER_ROUTER * routers
    if current[1] >= want3:
        return None
    return max(current[0], want3 * 3 // 4), want3


def ensure_neighbour_limits(routers: int) -> List[str]:
    changes = []
    for base in NEIGH_SYSCTLS:
        try:
            with open(f"{base}/gc_thresh2") as f2, open(f"{base}/gc_thresh3") as f3:
                cur = (int(f2.read()), int(f3.read()))
        except (OSError, ValueError):
            continue
        new = neighbour_limits(routers, cur)
        if new is None:
            continue
        for name, value in (("gc_thresh3", new[1]), ("gc_thresh2", new[0])):
            try:
                with open(f"{base}/{name}", "w") as fh:
                    fh.write(str(value))
                changes.append(f"{base.split('/')[4]} neighbour table {name}: {value}")
            except OSError:      # e.g. inside a container: the limit stays, the lab may not scale
                pass
    return changes


def _last_log_line(path: str) -> Optional[str]:
    """The last non-empty line of a daemon's log file, shortened (None if there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [l.strip() for l in fh.read().decode(errors="replace").splitlines() if l.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


VTYSH_CONF = "vtysh.conf"


def _write_if_changed(path: str, text: str, uid: int, gid: int) -> bool:
    try:
        with open(path) as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chown(tmp, uid, gid)
    os.replace(tmp, path)
    return True


class RouterSteps:
    def _up_routers(self) -> None:
        if not self.plan.routers:
            return
        self.progress(f"{len(self.plan.routers)} FRR routers")
        self._changed(ensure_neighbour_limits(len(self.plan.routers)))
        uid, gid = self.backend.frr_ids()        # the frr user the daemons run as (a container's own)
        if self.backend.uses_host_frr and not os.path.isdir(FRR_RUN_DIR):
            os.makedirs(FRR_RUN_DIR, exist_ok=True)
            os.chown(FRR_RUN_DIR, uid, gid)
        to_start: List[Tuple[Router, List[str]]] = []
        for router in self.plan.routers:
            ident = self._identities[router.node]
            new_dir = not os.path.isdir(router.confdir)
            os.makedirs(router.confdir, exist_ok=True)
            os.chown(router.confdir, uid, gid)
            if new_dir:
                self._undo.append((f"config dir {router.confdir}",
                                   lambda d=router.confdir: shutil.rmtree(d, ignore_errors=True)))
            # vtysh run with --config_dir <router dir> (names.vtysh_argv, `minet exec`) reads its
            # vtysh.conf there: an empty one, so that it does not complain on every call
            vtysh_conf = os.path.join(router.confdir, VTYSH_CONF)
            if not os.path.exists(vtysh_conf):
                _write_if_changed(vtysh_conf, "", uid, gid)
            # A student's router (configure: false) owns its frr.conf once it exists: `write memory`
            # saves there, and re-provisioning must neither overwrite it nor restart FRR.
            if router.configure or not os.path.exists(router.conf_path):
                conf_changed = _write_if_changed(router.conf_path, router.config, uid, gid)
            else:
                conf_changed = False
            running = {d: self._daemon_pid(router, d, ident) for d in ALL_DAEMONS}
            unwanted = [pid for d, pid in running.items() if pid and d not in router.daemons]
            if unwanted:                 # a daemon an earlier plan ran that this one does not need
                stop_processes(unwanted)
                self.changes.append(f"{router.node}: stopped {len(unwanted)} daemons it no longer needs")
            if conf_changed:
                self.changes.append(f"{router.node}: frr.conf written")
                live = [pid for d, pid in running.items() if pid and d in router.daemons]
                if live:
                    stop_processes(live)
                    self.changes.append(f"{router.node}: FRR restarted for the new configuration")
                    running = {d: None for d in ALL_DAEMONS}
            missing = [d for d in router.daemons if not running[d]]
            if "zebra" in missing and len(missing) < len(router.daemons):
                # the daemons that outlived zebra never hand a new zebra their routes (ospfd's
                # stay out of the RIB, iBGP to loopbacks stays down): restart the router as a set
                stop_processes([running[d] for d in router.daemons if running[d]])
                self.changes.append(f"{router.node}: FRR restarted as a set (zebra was gone)")
                missing = list(router.daemons)
            if missing:
                to_start.append((router, missing))
        self._start_routers(to_start)

    def _daemon_pid(self, router: Router, daemon: str, ident: str) -> Optional[int]:
        try:
            with open(router.pid_path(daemon)) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            return None
        pid = self.backend.host_pid(pid, ident)    # pid files hold the pid as the node sees it
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/comm") as fh:
                return pid if fh.read().strip() == daemon else None
        except OSError:
            return None

    def _start_routers(self, to_start: List[Tuple[Router, List[str]]]) -> None:
        """Start the daemons of many routers, `start_jobs()` routers at a time.

        Per router: zebra first, ready (its pid file names a live zebra and its zserv socket
        exists), then the others together, each ready when its pid file names it. Each daemon has
        its own deadline (DAEMON_READY_TIMEOUT from its own start), so a slow machine makes
        start-up slower, not wrong. After FAIL_STOP failures no further routers are tried.
        """
        if not to_start:
            return
        self._merge_pages([router for router, _ in to_start])
        jobs = start_jobs()
        total_daemons = sum(len(ds) for _, ds in to_start)
        self.progress(f"FRR: starting {total_daemons} daemons of {len(to_start)} routers, {jobs} routers at a time")
        stop = threading.Event()
        failures: List[DaemonFailure] = []
        done = [0, 0]                      # routers finished, daemons started
        t0 = time.monotonic()
        # ksmd scans fast while routers start (host.page_merging) and goes back to its own rate once
        # merging settles after every start-up (host.calm_when_merged, a process of its own)
        starting = host.ksm_starting() if self._merging else contextlib.nullcontext()
        with starting, ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="frr-start") as pool:
            futures = {pool.submit(self._start_router, router, daemons, stop): (router, daemons)
                       for router, daemons in to_start}
            pending = set(futures)
            last_note = time.monotonic()
            try:
                while pending:
                    finished, pending = wait(pending, timeout=1.0)
                    for fut in finished:
                        router, daemons = futures[fut]
                        if fut.cancelled():
                            continue
                        started, failed = fut.result()
                        done[0] += 1
                        done[1] += started
                        failures += failed
                    if len(failures) >= FAIL_STOP and not stop.is_set():
                        stop.set()
                        for fut in pending:
                            fut.cancel()
                    now = time.monotonic()
                    if pending and now - last_note >= PROGRESS_EVERY:
                        last_note = now
                        rate = done[0] / (now - t0)
                        eta = f", ETA {len(pending) / rate:.0f} s" if rate > 0 else ""
                        self.progress(f"FRR: {done[0]}/{len(to_start)} routers started "
                                      f"({done[1]}/{total_daemons} daemons{eta})")
            except BaseException:
                stop.set()
                for fut in pending:
                    fut.cancel()
                raise
        self.progress(f"FRR: {done[0]}/{len(to_start)} routers, {done[1]}/{total_daemons} daemons started "
                      f"in {time.monotonic() - t0:.1f} s")
        if self._merging:
            host.spawn_calm_when_merged()
        if failures:
            raise ProvisionError(self.plan.server, self._failure_summary(failures, total_daemons))

    def _merge_pages(self, routers: List[Router]) -> None:
        """Opt this process into KSM before it starts FRR (fabric.share_memory), once."""
        if self._merging is not None:
            return
        self._merging = False
        if not (self.backend.merges_pages and any(r.share_memory for r in routers)):
            return
        if not shutil.which("setarch"):
            self.progress("FRR memory sharing is off: setarch (util-linux) is missing")
            return
        merging = host.page_merging()
        self._changed(list(merging.changes))
        self._merging = merging.on
        if not merging.on:
            self.progress(f"FRR memory sharing is off: {merging.why_not}")

    def _start_router(self, router: Router, daemons: List[str], stop: threading.Event
                      ) -> Tuple[int, List["DaemonFailure"]]:
        if stop.is_set():
            return 0, [DaemonFailure(router.node, d, "not tried (too many failures before)", False)
                       for d in daemons]
        if self._merging:
            why = self._wait_for_memory(router, stop)
            if why:
                return 0, [DaemonFailure(router.node, d, why, False) for d in daemons]
        started = 0
        failures: List[DaemonFailure] = []
        waves = [[d for d in daemons if d == "zebra"], [d for d in daemons if d != "zebra"]]
        for wave in waves:
            procs = [(d, self._spawn(router, d)) for d in wave]
            for daemon, (proc, t_start) in procs:
                why = self._await_ready(router, daemon, proc, t_start, stop)
                if why is None:
                    started += 1
                else:
                    failures.append(DaemonFailure(router.node, daemon, why))
            if failures:                   # without zebra the others cannot work: do not start them
                rest = [d for w in waves[waves.index(wave) + 1:] for d in w]
                failures += [DaemonFailure(router.node, d, "not started: zebra did not start", False)
                             for d in rest]
                break
        return started, failures

    def _wait_for_memory(self, router: Router, stop: threading.Event,
                         available: Callable[[], Optional[float]] = capacity.available_mb) -> Optional[str]:
        """None once MemAvailable is at least MEMORY_LOW_MB (see there), else why not."""
        t0 = time.monotonic()
        noted = False
        while True:
            mb = available()
            if mb is None or mb >= MEMORY_LOW_MB:
                return None
            if stop.is_set():
                return "not started (too many failures before)"
            waited = time.monotonic() - t0
            if waited >= MEMORY_WAIT:
                return (f"not started: {mb:.0f} MB of memory available, under {MEMORY_LOW_MB:.0f} MB for "
                        f"{waited:.0f} s while KSM merged pages")
            if not noted:
                noted = True
                with self._lock:
                    if time.monotonic() - self._memory_note >= PROGRESS_EVERY:
                        self._memory_note = time.monotonic()
                        self.progress(f"FRR: {router.node} waits for memory ({mb:.0f} MB available, "
                                      f"under {MEMORY_LOW_MB:.0f} MB): KSM is merging the routers started")
            stop.wait(1.0)

    def _spawn(self, router: Router, daemon: str) -> Tuple[subprocess.Popen, float]:
        node = self.plan.node_by_id[router.node]
        _remove(router.pid_path(daemon))
        argv = self.backend.exec_args(node, router.daemon_args(daemon, node.ns, self.frr_dir,
                                                                  merging=bool(self._merging)))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        return proc, time.monotonic()

    def _await_ready(self, router: Router, daemon: str, proc: subprocess.Popen, t_start: float,
                     stop: threading.Event) -> Optional[str]:
        """None once `daemon` of `router` is ready, else why not (its own output or log line)."""
        ident = self._identities[router.node]
        deadline = t_start + DAEMON_READY_TIMEOUT
        # `-d`: the parent exits once the daemon has read its configuration
        while proc.poll() is None and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate()[0] or ""
        pid = None
        while True:
            pid = self._daemon_pid(router, daemon, ident)
            ready = pid is not None and (daemon != "zebra" or os.path.exists(router.zserv_path))
            if ready or proc.returncode != 0 or time.monotonic() >= deadline or stop.is_set():
                break
            time.sleep(0.05)
        if pid:
            with self._lock:
                self._created(f"{router.node}: {daemon} (pid {pid})",
                              lambda p=pid, i=ident: self.backend.process_in(p, i) and stop_processes([p]))
            if ready:
                return None
            return f"no zserv socket {router.zserv_path} after {DAEMON_READY_TIMEOUT:g} s"
        if stop.is_set():
            return "interrupted"
        lines = [l.strip() for l in out.splitlines() if l.strip() and "-z option overrides -N" not in l]
        log_line = _last_log_line(os.path.join(router.confdir, f"{daemon}.log"))
        if proc.returncode == -9 and time.monotonic() >= deadline:
            why = f"not ready after {DAEMON_READY_TIMEOUT:g} s (killed)"
        elif lines:
            why = lines[-1]
        else:
            why = f"exit status {proc.returncode}"
        return f"{why}; log: {log_line}" if log_line and log_line not in why else why

    def failure_log_path(self) -> str:
        """Where the full list of daemons that did not start goes (it survives the rollback)."""
        root = os.path.dirname(os.path.dirname(self.plan.state_dir))
        return os.path.join(root, f"{self.plan.instance}.{self.plan.server}.frr-start-failures.log")

    def _failure_summary(self, failures: List["DaemonFailure"], total: int) -> str:
        path = self.failure_log_path()
        try:
            with open(path, "w") as fh:
                fh.write(f"# {time.strftime('%F %T')} {self.plan.instance} server {self.plan.server}: "
                         f"{len(failures)} of {total} FRR daemons did not start\n")
                for f in failures:
                    fh.write(f"router {f.router} {f.daemon}: {f.why}\n")
        except OSError as exc:
            path = f"(not written: {exc.strerror})"
        return summarise_failures(failures, total, path)
