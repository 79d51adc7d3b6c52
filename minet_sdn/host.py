"""Host primitives shared by provisioning, the lab, the benches and the tests: processes (alive,
stop), entering a network namespace (setns, per thread), file locks, starting an Open vSwitch
instance of its own (one per emulated server, see PLATFORM-NOTES), and kernel page merging (KSM)
for the processes this one starts.

Nothing here knows about topologies; names come from `topology/names.py`.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

from pyroute2 import netns as pyr_netns

NETNS_DIR = "/run/netns"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"

T = TypeVar("T")


# ---- processes ------------------------------------------------------------------------------

def _stat_fields(pid: int) -> Optional[List[str]]:
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def proc_starttime(pid: int) -> Optional[int]:
    """Start time of `pid` (clock ticks since boot), or None if there is no such process; kept
    with a pid, it tells a recycled pid from the process it was."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Running: a zombie does not count (it has exited; PID 1 here reaps nothing)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def reap(pid: int) -> None:
    """Collect `pid` if it is an exited child of ours (a no-op otherwise)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_processes(pids: Iterable[int], timeout: float = 5.0, kill_wait: float = 2.0,
                   alive: Callable[[int], bool] = pid_alive) -> List[int]:
    """SIGTERM every pid, SIGKILL what is still alive after `timeout` s, wait up to `kill_wait` s
    for those; our own children are reaped on the way. Returns the pids still alive at the end."""
    left = [p for p in pids if alive(p)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, kill_wait)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left:
            for pid in left:
                reap(pid)
            left = [p for p in left if alive(p)]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if not left:
            break
    return left


def stop_child(proc: "subprocess.Popen", timeout: float = 10.0) -> None:
    """Terminate a child we started (subprocess.Popen), kill it after `timeout` s, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def read_pidfile(path: str, timeout: float = 5.0) -> Optional[int]:
    """The live pid a daemon wrote to `path`, waiting up to `timeout` s for it; None if none."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, IndexError):   # IndexError: not written yet
            with open(path) as fh:
                pid = int(fh.read().split()[0])
            if proc_starttime(pid) is not None:
                return pid
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


# ---- network namespaces ---------------------------------------------------------------------

def netns_path(ns: str) -> str:
    """The file of a named namespace (a path is returned as it is)."""
    return ns if "/" in ns else os.path.join(NETNS_DIR, ns)


@contextlib.contextmanager
def entered(nspath: Optional[str]) -> Iterator[None]:
    """Run the body with the calling THREAD inside network namespace `nspath` (a name or a path;
    None: stay), then go back. setns(CLONE_NEWNET) changes only the calling thread."""
    if nspath is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        pyr_netns.setns(netns_path(nspath), flags=0)
        try:
            yield
        finally:
            try:
                pyr_netns.setns(home, flags=0)
            except OSError:                   # cannot happen short of a kernel bug
                os.abort()
    finally:
        os.close(home)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """fn() run in a short-lived thread inside namespace `ns`: what it creates (a socket) stays
    in `ns` for its whole life, and the caller's thread never moves."""
    result: Dict[str, object] = {}

    def work() -> None:
        try:
            with entered(ns):
                result["value"] = fn()
        except BaseException as exc:     # handed to the caller
            result["error"] = exc

    t = threading.Thread(target=work, name=f"setns-{ns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def netns_connect(ns: str, address: str, port: int, timeout: float = 5.0,
                  source: Optional[str] = None) -> socket.socket:
    """A TCP connection made from inside namespace `ns` (the socket is usable from any thread),
    from local address `source` when given."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = in_netns(netns_path(ns), lambda: socket.socket(family, socket.SOCK_STREAM))
    sock.settimeout(timeout)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((address, port))
    except OSError:
        sock.close()
        raise
    return sock


# ---- file locks -----------------------------------------------------------------------------

class Busy(Exception):
    """A non-blocking lock is held by someone else."""


@contextlib.contextmanager
def file_lock(path: str, *, blocking: bool = True, directory: bool = False) -> Iterator[int]:
    """An exclusive flock on `path` for the body (a directory's own inode with directory=True,
    else a lock file created 0600). Non-blocking: raises Busy when someone holds it."""
    if directory:
        os.makedirs(path, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Busy(path) from None
            raise
        yield fd
    finally:
        os.close(fd)


# ---- an Open vSwitch instance of its own ----------------------------------------------------

def ovs_env(directory: str) -> Dict[str, str]:
    """Environment that points ovs-vsctl/ovs-ofctl/ovs-appctl at the OvS instance in `directory`."""
    return {"OVS_RUNDIR": directory, "OVS_DBDIR": directory, "OVS_LOGDIR": directory,
            "OVS_SYSCONFDIR": directory}


@dataclass(frozen=True)
class OvsFiles:
    dir: str

    @property
    def db(self) -> str:
        return os.path.join(self.dir, "conf.db")

    @property
    def db_sock(self) -> str:
        return os.path.join(self.dir, "db.sock")

    def pidfile(self, daemon: str) -> str:
        return os.path.join(self.dir, f"{daemon}.pid")

    def log(self, daemon: str) -> str:
        return os.path.join(self.dir, f"{daemon}.log")

    def mgmt(self, bridge: str) -> str:
        """ovs-ofctl's target for `bridge`."""
        return f"unix:{os.path.join(self.dir, bridge)}.mgmt"


OVS_DAEMONS = ("ovsdb-server", "ovs-vswitchd")
# Open vSwitch's own start script (ovs-ctl) runs both daemons at nice -10 by default: BFD, the
# forwarding of the tunnels and the OpenFlow channel live in them, and on a server that also runs
# its routers they must not wait behind the routers' start-up. The lab's emulated servers do the same.
OVS_NICE = ["nice", "-n", "-10"]


def start_ovs(directory: str, prefix: Sequence[str], run: Callable[[List[str]], object],
              started: Optional[Callable[[str, str], None]] = None) -> OvsFiles:
    """ovsdb-server then ovs-vswitchd of the instance in `directory` (its DB created when missing),
    each started under `prefix` (the argv that enters its namespace, e.g. names.exec_prefix) with
    that instance's environment; `run(argv)` runs a command and raises on failure. `started(daemon,
    pidfile)` is called as each daemon is up (so a caller can record it before the next step)."""
    f = OvsFiles(directory)
    env = ["env", *(f"{k}={v}" for k, v in ovs_env(directory).items())]
    if not os.path.exists(f.db):
        run(["ovsdb-tool", "create", f.db, OVS_SCHEMA])
    d = directory
    run([*prefix, *env, *OVS_NICE, "ovsdb-server", f"--remote=punix:{f.db_sock}", f"--pidfile={f.pidfile('ovsdb-server')}",
         "--detach", f"--log-file={f.log('ovsdb-server')}", "--unixctl", f"{d}/ovsdb-server.ctl", f.db])
    if started:
        started("ovsdb-server", f.pidfile("ovsdb-server"))
    run([*prefix, *env, "ovs-vsctl", f"--db=unix:{f.db_sock}", "--timeout=60", "--no-wait", "init"])
    run([*prefix, *env, *OVS_NICE, "ovs-vswitchd", f"unix:{f.db_sock}", f"--pidfile={f.pidfile('ovs-vswitchd')}", "--detach",
         f"--log-file={f.log('ovs-vswitchd')}", "--unixctl", f"{d}/ovs-vswitchd.ctl"])
    if started:
        started("ovs-vswitchd", f.pidfile("ovs-vswitchd"))
    return f


def stop_ovs(files: OvsFiles, timeout: float = 10.0) -> None:
    """Stop the instance's daemons (by their pid files), ovs-vswitchd first."""
    pids = []
    for daemon in reversed(OVS_DAEMONS):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(files.pidfile(daemon)) as fh:
                pids.append(int(fh.read().split()[0]))
    for pid in pids:
        stop_processes([pid], timeout)


# ---- kernel page merging (KSM) ---------------------------------------------------------------
# Hundreds of copies of the same FRR daemons hold mostly identical memory: each builds the same CLI
# command graph, the same relocated library data, zeroed buffers and tables. KSM stores such pages
# once. A process opts in with prctl(PR_SET_MEMORY_MERGE) (Linux 6.4+), and the setting is inherited
# by the processes it starts, across fork and exec (6.7+), so provisioning opts itself in before it
# starts FRR, and nothing else on the machine is affected. With ASLR on, pages that hold pointers
# differ between processes; FRR is started with ASLR off (`setarch -R`) so that they match too.
KSM_DIR = "/sys/kernel/mm/ksm"
PR_SET_MEMORY_MERGE = 67
PR_GET_MEMORY_MERGE = 68
# ksmd scans pages_to_scan pages every sleep_millisecs (default 100 per 20 ms, 20 MB/s: a 60 x 8 class
# lab's ~10 GB of FRR memory would take 8 minutes a pass). 1,000 per 20 ms is ~200 MB/s, a few % of
# one core (measured, README "Memory per router"); raised to that for start-up, never lowered by it.
KSM_PAGES_TO_SCAN = 1000
# ksmd goes on scanning at that rate for as long as merged memory exists: about 4 % of a 2-core
# machine at any lab size (the cost is the rate, not the pages), after merging settled a minute or
# three after start-up. So the rate goes back to what it was once a whole pass of ksmd merges
# under KSM_SETTLED more pages than the pass before, and no FRR start-up is under way: a small
# process provisioning leaves behind does that (calm_when_merged), at most KSM_CALM_TIMEOUT later.
# What we raised, from what, is recorded in KSM_STATE/rate (so a later run, or a rate someone
# else set in between, is told apart); FRR start-ups hold KSM_STATE/start.lock shared.
KSM_STATE = "/run/minet-ksm"
KSM_SETTLED = 0.01
KSM_CALM_TIMEOUT = 1800.0
KSM_CALM_POLL = 5.0


@dataclass(frozen=True)
class PageMerging:
    on: bool                           # this process and what it starts from now on are merged
    changes: Tuple[str, ...] = ()      # machine settings changed ("KSM turned on", ...)
    why_not: Optional[str] = None      # when not on: why, in one line


def _libc_prctl(option: int, arg: int) -> Tuple[int, int]:
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                    ctypes.c_ulong(0))
    return rc, ctypes.get_errno()


def _ksm_run(ksm_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """(ksmd's run setting, why KSM cannot be used here or None)."""
    try:
        with open(os.path.join(ksm_dir, "run")) as fh:
            run = fh.read().strip()
    except OSError:
        return None, f"this kernel has no KSM ({ksm_dir}/run is missing)"
    if run == "2":
        return run, f"KSM is stopped on this machine ({ksm_dir}/run is 2); left so"
    return run, None


def _no_prctl(err: int) -> str:
    return f"prctl(PR_SET_MEMORY_MERGE) failed: {os.strerror(err)} (KSM per process needs Linux 6.4 or later)"


def page_merging_unavailable(ksm_dir: str = KSM_DIR,
                             prctl: Callable[[int, int], Tuple[int, int]] = _libc_prctl) -> Optional[str]:
    """Why page_merging() would not turn on here (None: it would), changing nothing."""
    _, why = _ksm_run(ksm_dir)
    if why:
        return why
    rc, err = prctl(PR_GET_MEMORY_MERGE, 0)
    return _no_prctl(err) if rc < 0 else None


def _ksm_state(ksm_dir: str, state_dir: Optional[str]) -> str:
    """Where our record of the scan rate lives: KSM_STATE for the kernel's own KSM, else (tests, a
    KSM directory of their own) that directory."""
    return state_dir or (KSM_STATE if ksm_dir == KSM_DIR else ksm_dir)


def _read_int(path: str) -> int:
    with open(path) as fh:
        return int(fh.read().strip())


def _record_rate(state: str, before: int, raised: int) -> None:
    """Remember the rate before ours (the first one we saw: a later raise keeps it)."""
    os.makedirs(state, mode=0o755, exist_ok=True)
    path = os.path.join(state, "rate")
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(path) as fh:
            before = int(fh.read().split()[0])
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{before} {raised}\n")
    os.replace(tmp, path)


def page_merging(pages_to_scan: int = KSM_PAGES_TO_SCAN, ksm_dir: str = KSM_DIR,
                 prctl: Callable[[int, int], Tuple[int, int]] = _libc_prctl,
                 state_dir: Optional[str] = None) -> PageMerging:
    """Opt this process (and what it starts from now on) into KSM, turn ksmd on if it is off, and
    raise its scan rate to `pages_to_scan` (recording the rate before, for calm_page_merging). A
    machine where KSM was stopped on purpose (run = 2, "unmerge everything") is left alone."""
    run, why = _ksm_run(ksm_dir)
    if why:
        return PageMerging(False, why_not=why)
    rc, err = prctl(PR_SET_MEMORY_MERGE, 1)
    if rc != 0:
        return PageMerging(False, why_not=_no_prctl(err))
    changes: List[str] = []
    try:
        if run != "1":
            with open(os.path.join(ksm_dir, "run"), "w") as fh:
                fh.write("1")
            changes.append(f"KSM turned on ({ksm_dir}/run = 1)")
        path = os.path.join(ksm_dir, "pages_to_scan")
        with open(path) as fh:
            current = int(fh.read().strip())
        if current < pages_to_scan:
            _record_rate(_ksm_state(ksm_dir, state_dir), current, pages_to_scan)
            with open(path, "w") as fh:
                fh.write(str(pages_to_scan))
            changes.append(f"KSM scan rate {path} = {pages_to_scan} (was {current}), back once merged")
    except (OSError, ValueError) as exc:
        prctl(PR_SET_MEMORY_MERGE, 0)
        return PageMerging(False, tuple(changes), f"cannot set up KSM: {exc}")
    return PageMerging(True, tuple(changes))


@contextlib.contextmanager
def ksm_starting(ksm_dir: str = KSM_DIR, state_dir: Optional[str] = None) -> Iterator[None]:
    """Held (shared) while FRR starts: the scan rate does not go back during anyone's start-up."""
    state = _ksm_state(ksm_dir, state_dir)
    os.makedirs(state, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(state, "start.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def ksm_counters(ksm_dir: str = KSM_DIR) -> Optional[Tuple[int, int]]:
    """(full_scans, pages_sharing) of ksmd, None when they cannot be read."""
    try:
        return _read_int(os.path.join(ksm_dir, "full_scans")), _read_int(os.path.join(ksm_dir, "pages_sharing"))
    except (OSError, ValueError):
        return None


def merging_settled(pass_start: Tuple[int, int], now: Tuple[int, int]) -> bool:
    """(full_scans, pages_sharing) at the end of one whole pass of ksmd and now: True when at least
    one more whole pass ended and it merged under KSM_SETTLED more pages, or nothing is shared at
    either end (the merged processes are gone: nothing left to merge)."""
    scans0, sharing0 = pass_start
    scans, sharing = now
    if scans <= scans0:
        return False
    return sharing == sharing0 == 0 or (sharing > 0 and sharing - sharing0 < KSM_SETTLED * sharing)


def calm_page_merging(ksm_dir: str = KSM_DIR, state_dir: Optional[str] = None) -> Optional[str]:
    """Put the scan rate back to the one recorded before page_merging raised it, if it is still
    ours (someone else's rate is left alone) and no FRR start-up holds ksm_starting. What was
    changed, or None (also when a start-up is under way: the record stays for later)."""
    state = _ksm_state(ksm_dir, state_dir)
    record = os.path.join(state, "rate")
    try:
        with open(record) as fh:
            before, raised = (int(x) for x in fh.read().split()[:2])
    except (OSError, ValueError):
        return None
    os.makedirs(state, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(state, "start.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        path = os.path.join(ksm_dir, "pages_to_scan")
        changed = None
        try:
            if _read_int(path) == raised:
                with open(path, "w") as fh:
                    fh.write(str(before))
                changed = f"KSM scan rate {path} = {before} (merging settled)"
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.unlink(record)
        return changed
    finally:
        os.close(fd)


def calm_when_merged(ksm_dir: str = KSM_DIR, state_dir: Optional[str] = None, *,
                     timeout: float = KSM_CALM_TIMEOUT, poll: float = KSM_CALM_POLL,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> Optional[str]:
    """Wait until merging settles (merging_settled over whole passes; at most `timeout`), then
    calm_page_merging, retrying while a start-up holds it off (until `timeout`). One waiter per
    machine: another one already waiting makes this one return None at once."""
    state = _ksm_state(ksm_dir, state_dir)
    os.makedirs(state, mode=0o755, exist_ok=True)
    try:
        with file_lock(os.path.join(state, "calm.lock"), blocking=False):
            t0 = clock()
            pass_start: Optional[Tuple[int, int]] = None
            seen = ksm_counters(ksm_dir)
            while clock() - t0 < timeout:
                sleep(poll)
                if not os.path.exists(os.path.join(state, "rate")):
                    return None                       # put back already (another run's waiter)
                now = ksm_counters(ksm_dir)
                if now is None or seen is None:
                    seen = now
                    continue
                if now[0] > seen[0]:                 # a pass ended since the last look
                    if pass_start is not None and merging_settled(pass_start, now):
                        break
                    pass_start = now
                seen = now
            while True:                               # settled (or out of time): back, once no start-up runs
                if not os.path.exists(os.path.join(state, "rate")):
                    return None
                done = calm_page_merging(ksm_dir, state)
                if done or clock() - t0 >= timeout:
                    return done
                sleep(poll)
    except Busy:
        return None


def spawn_calm_when_merged() -> None:
    """calm_when_merged in a process of its own that outlives the caller (provisioning ends long
    before merging settles), detached from its terminal and pipes (an SSH session can end)."""
    subprocess.Popen([sys.executable, "-c", "from minet_sdn import host; host.calm_when_merged()"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
