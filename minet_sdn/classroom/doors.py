"""Every door of one machine, up or down: the groups' users, their cgroups, the broker and one
sshd per door. Idempotent: `up` again keeps what runs and repairs what does not.

    /run/minet-class/<instance>/        ($MINET_CLASS_RUN) 0755 root
        plan.json        what the broker serves (0600)      broker.sock  (0666; SO_PEERCRED decides)
        state.json       the pids this module started        stage/       the sandboxes' mount point
        as<ASN>/         sshd_config, authorized_keys (the TA's keys), sshd.pid, sshd.log

A user is ours when its GECOS field is `minet-sdn door <instance> AS<ASN>`: `down` removes only
those, and `up` refuses to take over a user of the same name that is not ours.
"""
from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from .. import host
from . import ClassError, cgroups, credentials, goto
from .settings import ClassSettings
from .sshd import DoorConfig, config_text

SSHD = "/usr/sbin/sshd"
DEFAULT_RUN = "/run/minet-class"
# node id -> (namespace, a router's FRR dir | a switch's layer-2 map (provision/l2ctl.py) | None)
Nodes = Dict[str, Tuple[str, Optional[str]]]


def run_root() -> str:
    return os.environ.get("MINET_CLASS_RUN", DEFAULT_RUN)


def run_dir(instance: str) -> str:
    return os.path.join(run_root(), instance)


def gecos(instance: str, asn: int) -> str:
    return f"minet-sdn door {instance} AS{asn}"


def _run(argv: List[str], input: Optional[str] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClassError(f"`{' '.join(argv[:3])} ...` failed: {(proc.stderr or proc.stdout).strip()[:200]}")
    return proc


# ---- users ----------------------------------------------------------------------------------

def ours(user: str, instance: str, asn: int) -> Optional[pwd.struct_passwd]:
    """The passwd entry of `user` if it exists and is our group's; ClassError if it is someone else's."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    if pw.pw_gecos != gecos(instance, asn):
        raise ClassError(f"user {user} exists and is not a door user of {instance} (GECOS {pw.pw_gecos!r}); "
                         "rename the instance or remove that user")
    return pw


def ensure_user(user: str, instance: str, asn: int, crypted: str) -> pwd.struct_passwd:
    """The group's user, made if missing, with `crypted` (a crypt(3) hash) as its password."""
    pw = ours(user, instance, asn)
    if pw is None:
        _run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/",
              "--shell", "/bin/sh", "--comment", gecos(instance, asn), user])
        pw = pwd.getpwnam(user)
    set_crypted(user, crypted)
    return pw


def set_crypted(user: str, crypted: str) -> None:
    _run(["usermod", "-p", crypted, user])


def set_password(user: str, password: str) -> None:
    set_crypted(user, credentials.password_hash(password))


def remove_user(user: str, instance: str, asn: int) -> List[str]:
    try:
        pw = ours(user, instance, asn)
    except ClassError as exc:
        return [str(exc)]
    if pw is None:
        return []
    kill_uid(pw.pw_uid)
    proc = subprocess.run(["userdel", user], capture_output=True, text=True)
    if proc.returncode != 0 and user in {p.pw_name for p in pwd.getpwall()}:
        return [f"userdel {user}: {proc.stderr.strip()}"]
    return []


def uid_pids(uid: int) -> List[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
    return pids


def kill_uid(uid: int) -> None:
    for _ in range(20):                      # a fork bomb forks while it is being killed
        pids = uid_pids(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


# ---- plan -----------------------------------------------------------------------------------

@dataclass
class Door:
    asn: int
    user: str
    port: int
    dir: str


def door_asns(topo, servers: Iterable[str]) -> List[int]:
    settings: Optional[ClassSettings] = topo.classroom
    if settings is None:
        return []
    here = set(servers)
    return [a for a in settings.door_asns(topo.ases) if topo.ases[a].server in here]


def broker_plan(topo, asns: List[int], nodes: Nodes, users: Dict[int, pwd.struct_passwd], mode: str,
                rdir: Optional[str] = None) -> Dict:
    settings: ClassSettings = topo.classroom
    rdir = rdir or run_dir(topo.name)
    groups = {}
    for asn in asns:
        pw = users[asn]
        devices = {}
        for key, dev in goto.group_devices(topo, asn).items():
            ns, confdir = nodes.get(dev.node, (None, None))
            if ns is None:
                continue
            devices[key] = {"kind": dev.kind, "node": dev.node, "netns": ns,
                            "vty_dir": confdir if dev.kind == "router" else None,
                            "l2_map": confdir if dev.kind == "switch" else None, "dir_gid": pw.pw_gid}
        groups[str(pw.pw_uid)] = {"asn": asn, "user": pw.pw_name, "uid": pw.pw_uid, "gid": pw.pw_gid,
                                  "devices": devices}
    return {"instance": topo.name, "tag": topo.tag, "socket": os.path.join(rdir, "broker.sock"),
            "stage": os.path.join(rdir, "stage"), "cgroup_mode": mode,
            "limits": vars(settings.limits), "frrvty_gid": grp.getgrnam("frrvty").gr_gid,
            "frr_uid": pwd.getpwnam("frr").pw_uid, "groups": groups}


def share_router_dir(confdir: str, gid: int) -> None:
    """The group may write its router's FRR directory (vtysh's `write memory` as the group's user);
    frr keeps owning it."""
    if not confdir or not os.path.isdir(confdir):
        return
    os.chown(confdir, -1, gid)
    os.chmod(confdir, 0o2770)
    for name in ("frr.conf", "vtysh.conf"):
        path = os.path.join(confdir, name)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not os.path.islink(path):
                os.chown(path, -1, gid)
                os.chmod(path, 0o660 if name == "frr.conf" else 0o640)


# ---- processes ------------------------------------------------------------------------------

def _state(rdir: str) -> Dict[str, Dict]:
    try:
        with open(os.path.join(rdir, "state.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _save_state(rdir: str, state: Dict[str, Dict]) -> None:
    tmp = os.path.join(rdir, "state.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, os.path.join(rdir, "state.json"))


def _alive(rec: Optional[Dict]) -> bool:
    return bool(rec) and host.proc_starttime(rec["pid"]) == rec["start"] and host.pid_alive(rec["pid"])


def _stop(rec: Optional[Dict]) -> None:
    if _alive(rec):
        host.stop_processes([rec["pid"]], 5.0, alive=lambda _pid: _alive(rec))


def _python() -> str:
    return sys.executable


def shell_argv(sock: str) -> List[str]:
    """The door shell, as the group's user runs it: a Python that user can execute (this one may
    live under a private directory, e.g. /root/.pyenv), `-I` (no environment, no user site), and
    this package found by its absolute path (root-owned) rather than by anything the user sets."""
    python = sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and os.stat(os.path.realpath(candidate)).st_mode & 0o001:
            python = candidate
            break
    pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {pkg_parent!r}); "
            "from minet_sdn.classroom.shell import main; sys.exit(main())")
    return [python, "-I", "-c", code, sock]


def start_broker(rdir: str, state: Dict[str, Dict]) -> None:
    if _alive(state.get("broker")):
        _stop(state["broker"])                 # the plan may have changed: a fresh broker reads it
    log = open(os.path.join(rdir, "broker.log"), "ab")
    proc = subprocess.Popen([_python(), "-I", "-m", "minet_sdn.classroom.broker", os.path.join(rdir, "plan.json")],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            close_fds=True, cwd="/")
    log.close()
    proc.returncode = 0                        # reaped by pid in _stop; keep Popen quiet
    state["broker"] = {"pid": proc.pid, "start": host.proc_starttime(proc.pid)}
    sock = os.path.join(rdir, "broker.sock")
    deadline = time.monotonic() + 10
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.close()
            return
        except OSError:
            s.close()
            if time.monotonic() > deadline or not _alive(state["broker"]):
                raise ClassError(f"the door broker did not start (see {rdir}/broker.log)")
            time.sleep(0.05)


def start_sshd(door: Door, state: Dict[str, Dict], listen: str, key: str, ta_keys: Iterable[str]) -> None:
    rec = state.get(f"sshd{door.asn}")
    if _alive(rec):
        _stop(rec)                             # its config may have changed (keys, port)
    os.makedirs(door.dir, mode=0o755, exist_ok=True)
    auth = os.path.join(door.dir, "authorized_keys")
    with open(auth + ".tmp", "w") as fh:
        fh.write("".join(f"{k}\n" for k in ta_keys))
    os.chmod(auth + ".tmp", 0o644)
    os.replace(auth + ".tmp", auth)
    cfg = DoorConfig(asn=door.asn, user=door.user, listen=listen, port=door.port, host_key=key,
                     authorized_keys=auth, pid_file=os.path.join(door.dir, "sshd.pid"),
                     shell_argv=shell_argv(os.path.join(os.path.dirname(door.dir), "broker.sock")))
    path = os.path.join(door.dir, "sshd_config")
    with open(path, "w") as fh:
        fh.write(config_text(cfg))
    os.chmod(path, 0o600)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    _run([SSHD, "-t", "-f", path])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(cfg.pid_file)
    _run([SSHD, "-f", path, "-E", os.path.join(door.dir, "sshd.log")])
    pid = host.read_pidfile(cfg.pid_file, 10)
    if pid is None:
        raise ClassError(f"sshd of the door of AS{door.asn} did not start (see {door.dir}/sshd.log)")
    state[f"sshd{door.asn}"] = {"pid": pid, "start": host.proc_starttime(pid)}
    deadline = time.monotonic() + 10
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    target = "127.0.0.1" if listen == "0.0.0.0" else "::1" if listen == "::" else listen
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            if s.connect_ex((target, door.port)) == 0:
                return
        if time.monotonic() > deadline:
            raise ClassError(f"the door of AS{door.asn} does not accept connections on {listen}:{door.port} "
                             f"(see {door.dir}/sshd.log)")
        time.sleep(0.05)


# ---- up / down ------------------------------------------------------------------------------

def up(topo, servers: Iterable[str], nodes: Nodes, listen: Optional[str] = None,
       progress=lambda _msg: None, store=None, rdir: Optional[str] = None) -> List[Door]:
    """Every door of `servers` (the ones this machine hosts), given their nodes; the doors made.
    `store`: where passwords and host keys come from (default: this machine's credentials.Store;
    a real server gets the master's, provision/doors_remote.py); `rdir`: the run directory."""
    if os.geteuid() != 0:
        raise ClassError("doors need root (users, sshd, namespaces)")
    asns = door_asns(topo, servers)
    if not asns:
        return []
    settings: ClassSettings = topo.classroom
    listen = listen or settings.listen
    store = store or credentials.Store(topo.name)
    store.ensure(asns)
    rdir = rdir or run_dir(topo.name)
    os.makedirs(os.path.join(rdir, "stage"), mode=0o755, exist_ok=True)
    os.chmod(os.path.dirname(rdir), 0o755)
    os.chmod(rdir, 0o755)
    mode = cgroups.detect()
    users: Dict[int, pwd.struct_passwd] = {}
    doors: List[Door] = []
    for asn in asns:
        user = credentials.user_name(topo.tag, asn)
        users[asn] = ensure_user(user, topo.name, asn, store.crypt(asn))
        for dev in goto.group_devices(topo, asn).values():
            if dev.kind == "router":
                share_router_dir(nodes.get(dev.node, (None, None))[1], users[asn].pw_gid)
        problems = cgroups.apply(cgroups.plan(mode, topo.tag, asn, settings.limits))
        if problems:
            progress(f"door AS{asn}: cgroup bounds not all set ({problems[0]}); rlimits still apply")
        doors.append(Door(asn, user, settings.port(asn), os.path.join(rdir, f"as{asn}")))
    plan = broker_plan(topo, asns, nodes, users, mode, rdir)
    path = os.path.join(rdir, "plan.json")
    with open(path + ".tmp", "w") as fh:
        json.dump(plan, fh, indent=1)
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    state = _state(rdir)
    try:
        start_broker(rdir, state)
        for door in doors:
            start_sshd(door, state, listen, store.host_key(door.asn), settings.ta_keys)
    finally:
        _save_state(rdir, state)
    progress(f"doors: {len(doors)} (AS {', '.join(str(d.asn) for d in doors)}) on {listen}, "
             f"ports {doors[0].port}..{doors[-1].port}; cgroups: {mode}")
    return doors


def down(topo, servers: Optional[Iterable[str]] = None, rdir: Optional[str] = None) -> List[str]:
    """Stop every door of the instance on this machine and remove its users and cgroups (the
    credentials and host keys stay, for the next `up`); the problems met."""
    problems: List[str] = []
    rdir = rdir or run_dir(topo.name)
    state = _state(rdir)
    for name, rec in sorted(state.items(), key=lambda kv: kv[0] == "broker"):   # doors first, broker last
        _stop(rec)
        if _alive(rec):
            problems.append(f"{name} (pid {rec['pid']}) did not stop")
    settings: Optional[ClassSettings] = topo.classroom
    asns = sorted(topo.ases) if servers is None else door_asns(topo, servers)
    mode = cgroups.detect()
    for asn in asns:
        user = credentials.user_name(topo.tag, asn)
        problems += remove_user(user, topo.name, asn)
        p = cgroups.plan(mode, topo.tag, asn, settings.limits if settings else cgroups.Limits())
        for pid in cgroups.members(p):        # sandboxes (root) still running for the group
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if p.dirs:
            deadline = time.monotonic() + 5
            while cgroups.members(p) and time.monotonic() < deadline:
                time.sleep(0.05)
        problems += cgroups.remove(p)
    if not problems and os.path.isdir(rdir):
        shutil.rmtree(rdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(rdir))
    return problems
