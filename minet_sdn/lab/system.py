"""Commands, daemons and network namespaces, as the lab uses them: a command that fails is a
LabError naming it and its last line of output.

Daemons that may create namespaces (sshd, hence provisioning over SSH) are started with
`nsenter --net` only, never `ip netns exec`: the latter gives its children a private mount
namespace, and `ip netns add` run there would not be visible to the rest of the machine.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from pyroute2 import netns as pyr_netns
from pyroute2.netlink.exceptions import NetlinkError

from .. import host
from ..provision import netlink as nlk
from ..provision.netns import ns_identity, processes_in
from ..topology import names
from . import LabError


def run(argv: Sequence[str], *, env: Optional[Dict[str, str]] = None, input: Optional[str] = None,
        timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    """Run `argv`; on failure raise LabError with the command and its last stderr line."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(list(argv), env=full_env, input=input, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found (is it installed?)")
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:g} s")
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {last_line(proc.stderr or proc.stdout)}")
    return proc


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def console_argv(name: str, module: str) -> List[str]:
    """argv running console script `name` with this very Python (found next to it, else -c)."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(script):
        return [sys.executable, script]
    return [sys.executable, "-c",
            f"import sys; sys.argv[0] = {name!r}; from {module} import main; sys.exit(main())"]


def nsenter_argv(ns: str, argv: Sequence[str]) -> List[str]:
    """Run `argv` in network namespace `ns` only (same mount namespace, unlike `ip netns exec`)."""
    return names.nsenter_prefix(host.netns_path(ns)) + list(argv)


def ip_batch(ns: str, commands: Sequence[str]) -> None:
    """`ip -n NS -batch -` (the lab itself uses provision/netlink.py; the test rigs use this)."""
    run(["ip", "-n", ns, "-batch", "-"], input="\n".join(commands) + "\n")


def ovs_vsctl(directory: str, *args: str, timeout: float = 20) -> str:
    """ovs-vsctl on the OvS instance of `directory` (an emulated server's)."""
    return run(["ovs-vsctl", f"--db=unix:{directory}/db.sock", f"--timeout={int(timeout)}", *args],
               env=host.ovs_env(directory), timeout=timeout + 5).stdout


# ---- network namespaces ---------------------------------------------------------------------

def netns_exists(name: str) -> bool:
    return os.path.exists(host.netns_path(name))


def create_netns(name: str) -> None:
    """A new named namespace (as `ip netns add` makes it) with its loopback up."""
    if netns_exists(name):
        raise LabError(f"network namespace {name} already exists and is not part of this lab")
    try:
        pyr_netns.create(name)
        with nlk.Netlink() as nl:
            nlk.set_up(nl, host.netns_path(name), "lo")
    except (OSError, NetlinkError, nlk.NetlinkProblem) as exc:
        raise LabError(f"cannot create network namespace {name}: {exc}") from None


def delete_netns(name: str) -> None:
    """Remove a named namespace (best effort, as `ip netns delete`; the caller checks it is gone)."""
    if netns_exists(name):
        with contextlib.suppress(OSError):
            pyr_netns.remove(name)


def netns_pids(name: str) -> List[int]:
    """Pids of the processes inside namespace `name` (as `ip netns pids`)."""
    return namespaces_pids([name])


def namespaces_pids(names_: Sequence[str]) -> List[int]:
    """Pids of the processes inside any of the named namespaces (one pass over /proc; not ours)."""
    identities = [i for i in (ns_identity(host.netns_path(n)) for n in names_) if i]
    return sorted({p for pids in processes_in(identities).values() for p in pids})


def wait_tcp(ns: str, address: str, port: int, timeout: float = 10.0) -> bool:
    """Whether something accepts connections on `address`:`port` in `ns` within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            host.netns_connect(ns, address, port, timeout=1.0).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


# ---- daemons --------------------------------------------------------------------------------

def read_pidfile(path: str, timeout: float = 5.0) -> int:
    pid = host.read_pidfile(path, timeout)
    if pid is None:
        raise LabError(f"no live process in pid file {path} after {timeout:g} s")
    return pid


def spawn_daemon(argv: Sequence[str], log_path: str, *, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None) -> int:
    """Start `argv` detached (own session, stdin /dev/null, output to `log_path`); its pid."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
        proc = subprocess.Popen(list(argv), stdin=null, stdout=log, stderr=subprocess.STDOUT,
                                env=full_env, cwd=cwd, start_new_session=True, close_fds=True)
    # The Popen object is dropped: ProcessRecord.stop reaps the daemon by pid; this keeps
    # Popen.__del__ from warning about a child it thinks still runs.
    proc.returncode = 0
    return proc.pid
