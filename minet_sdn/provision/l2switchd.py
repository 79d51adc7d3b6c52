"""The layer-2 Open vSwitch instance of one server: its own ovsdb-server and ovs-vswitchd.

Students' switches are bridges of one OvS instance per server (docs/layer2.md says why, with the
measured cost), separate from the instance that carries the remote bridges: a student's
configuration can never reach the fabric, and the fabric's OvS is never restarted for a class.
The instance runs inside the server's layer-2 node (a network namespace, `<tag>-l2`), with every
file (database, sockets, pid files, logs) in one directory of the provisioning state.

Processes are started detached (`--detach`), so they belong to the namespace, not to us: removing
the node stops them (backend.delete stops every process of a namespace).
"""
from __future__ import annotations

import os
import subprocess
import time
from typing import List, Optional, Sequence

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
VSCTL_TIMEOUT = 30


class SwitchdProblem(Exception):
    pass


def db_socket(rundir: str) -> str:
    return os.path.join(rundir, "db.sock")


def db_target(rundir: str) -> str:
    return f"unix:{db_socket(rundir)}"


def mgmt_target(rundir: str, bridge: str) -> str:
    """The OpenFlow management socket of `bridge` (ovs-ofctl talks to it)."""
    return f"unix:{os.path.join(rundir, bridge)}.mgmt"


def _env(rundir: str) -> List[str]:
    return [f"OVS_RUNDIR={rundir}", f"OVS_DBDIR={rundir}", f"OVS_LOGDIR={rundir}", f"OVS_SYSCONFDIR={rundir}"]


def start_argv(rundir: str) -> List[List[str]]:
    """The two daemons' argv (each run inside the layer-2 node)."""
    env = ["env", *_env(rundir)]
    return [
        [*env, "ovsdb-server", os.path.join(rundir, "conf.db"), f"--remote=punix:{db_socket(rundir)}",
         f"--pidfile={os.path.join(rundir, 'ovsdb-server.pid')}",
         f"--log-file={os.path.join(rundir, 'ovsdb-server.log')}", "--detach", "--no-chdir"],
        [*env, "ovs-vswitchd", db_target(rundir), f"--pidfile={os.path.join(rundir, 'ovs-vswitchd.pid')}",
         f"--log-file={os.path.join(rundir, 'ovs-vswitchd.log')}", "--detach", "--no-chdir"],
    ]


def pid_of(rundir: str, daemon: str) -> Optional[int]:
    """The live pid of `daemon` (ovsdb-server | ovs-vswitchd) of this instance, else None."""
    try:
        with open(os.path.join(rundir, f"{daemon}.pid")) as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/comm") as fh:
            comm = fh.read().strip()
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm.startswith(daemon[:15]) and state != "Z" else None


def running(rundir: str) -> bool:
    return pid_of(rundir, "ovsdb-server") is not None and pid_of(rundir, "ovs-vswitchd") is not None


def ensure_running(rundir: str, exec_prefix: Sequence[str], timeout: float = 30.0) -> List[str]:
    """Create the database if missing and start whichever daemon is not running; the changes made."""
    changes: List[str] = []
    os.makedirs(rundir, exist_ok=True)
    os.chmod(rundir, 0o700)        # the database socket: root only (students go through l2ctl)
    db = os.path.join(rundir, "conf.db")
    if not os.path.exists(db):
        subprocess.run(["ovsdb-tool", "create", db, SCHEMA], check=True, capture_output=True, timeout=30)
        changes.append(f"layer-2 OvS database {db}")
    for daemon, argv in zip(("ovsdb-server", "ovs-vswitchd"), start_argv(rundir)):
        if pid_of(rundir, daemon) is not None:
            continue
        res = subprocess.run([*exec_prefix, *argv], capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise SwitchdProblem(f"{daemon} did not start: {(res.stderr or res.stdout).strip()[-300:]}")
        changes.append(f"layer-2 OvS {daemon} started")
    deadline = time.monotonic() + timeout
    while True:
        try:
            vsctl(rundir, "--no-wait", "show", timeout=5)
            break
        except SwitchdProblem:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if any("ovsdb-server" in c for c in changes):
        vsctl(rundir, "--no-wait", "init")
    return changes


def vsctl(rundir: str, *args: str, timeout: int = VSCTL_TIMEOUT) -> str:
    cmd = ["ovs-vsctl", f"--db={db_target(rundir)}", f"--timeout={timeout}", *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
    except FileNotFoundError:
        raise SwitchdProblem("ovs-vsctl is not installed (package openvswitch-switch)") from None
    except subprocess.TimeoutExpired:
        raise SwitchdProblem(f"ovs-vsctl {' '.join(args[:3])}: no answer in {timeout} s") from None
    if res.returncode != 0:
        msg = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise SwitchdProblem(f"ovs-vsctl {' '.join(args[:3])}...: {msg[-1] if msg else 'exit %d' % res.returncode}")
    return res.stdout


def ofctl(rundir: str, *args: str, stdin: Optional[str] = None) -> str:
    res = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], input=stdin, capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0:
        raise SwitchdProblem(f"ovs-ofctl {' '.join(args[:2])}: {(res.stderr or res.stdout).strip()[-300:]}")
    return res.stdout


def appctl(rundir: str, *args: str) -> str:
    target = os.path.join(rundir, "ovs-vswitchd.%d.ctl" % (pid_of(rundir, "ovs-vswitchd") or 0))
    res = subprocess.run(["ovs-appctl", "-t", target, *args], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise SwitchdProblem(f"ovs-appctl {' '.join(args[:2])}: {(res.stderr or res.stdout).strip()[-300:]}")
    return res.stdout
