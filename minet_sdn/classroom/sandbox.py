"""Entering one device for one group, as root, then dropping to the group's user (run by the
broker as `python -I -m minet_sdn.classroom.sandbox SPEC-JSON`, a fresh single-threaded process,
with the student's terminal as fds 0-2).

  1. join the group's cgroups (pids, memory, cpu), PR_SET_PDEATHSIG (the broker gone: session gone)
  2. setns into the device's network namespace
  3. new mount, PID, IPC and UTS namespaces; the host name is the device's
  4. a new root on a tmpfs: /usr and /etc read-only, /dev, a fresh /proc (this PID namespace only),
     a fresh /sys (this network namespace), an empty /tmp; nothing else of the server exists in it
     (no /run, no state directories, no other group's files, no /home, /root, /var, /work)
     routers: /usr/bin holds vtysh only (no shell, no pager: `start-shell` and pager escapes find
     nothing to run); the router's FRR directory is its only socket directory, at /run/frr, and
     each daemon's socket there is the session's vty guard (vtyguard.py), not the daemon's
     hosts: the whole /usr (ip, ping, traceroute, tcpdump, a shell)
  5. chroot; fork (PID 1 of the new namespace reaps, and its exit ends every process of it)
  (routers, before 2: the vty guard's relay, a child of this process in the group's cgroups, so
   relaying the group's vtysh is the group's work, not the broker's)
  6. rlimits; the group's uid/gid (+frrvty for vtysh), an empty capability bounding set except
     NET_ADMIN and NET_RAW on hosts (ambient, so ip/ping/tcpdump work), no_new_privs; a clean env
"""
from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import json
import os
import resource
import shutil
import signal
import sys
from typing import Any, Dict, List

from . import vtyguard

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 8, 24, 38, 47
PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_CLEAR_ALL = 2, 4
CAP_NET_ADMIN, CAP_NET_RAW, CAP_LAST = 12, 13, 40
TIOCSCTTY = 0x540E

ROUTER_BINARIES = ("/usr/bin/vtysh",)
# Everything Python needs after the chroot is imported above: the interpreter's own library may
# live outside what the session's root shows (e.g. under /root/.pyenv).
SPEC_ENV = "MINET_DOOR_SPEC"
PATH = "/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin"

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    _check(_libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def bind(src: str, target: str, readonly: bool = False, rec: bool = True) -> None:
    mount(src, target, "", MS_BIND | (MS_REC if rec else 0))
    if readonly:
        mount("none", target, "", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _capset(bits: int) -> None:
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = data[0].inheritable = bits & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def _prctl(*args: int) -> None:
    args = (tuple(args) + (0, 0, 0, 0))[:5]          # unused arguments must be 0 (e.g. NO_NEW_PRIVS)
    _check(_libc.prctl(*[ctypes.c_ulong(a) for a in args]), f"prctl {args[0]}")


def build_root(spec: Dict[str, Any]) -> str:
    """The session's root filesystem, on a tmpfs mounted on spec["stage"] (private mount ns)."""
    root = spec["stage"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for d in ("usr", "etc", "dev", "proc", "sys", "tmp", "run", "var", "var/tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for link in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        src = os.path.join("/", link)
        if os.path.islink(src):
            os.symlink(os.readlink(src), os.path.join(root, link))
        elif os.path.isdir(src):
            os.makedirs(os.path.join(root, link))
            bind(src, os.path.join(root, link), readonly=True)
    bind("/usr", f"{root}/usr", readonly=True)
    bind("/etc", f"{root}/etc", readonly=True)
    bind("/dev", f"{root}/dev")
    mount("none", f"{root}/dev", "", MS_REMOUNT | MS_BIND | MS_NOSUID)
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=32m,mode=1777")
    mount("tmpfs", f"{root}/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777")
    mount("sysfs", f"{root}/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", f"{root}/run", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    if spec["kind"] == "router":
        # /usr/bin and /usr/sbin of a router session hold vtysh only: nothing vtysh could exec
        for d in ("usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "usr/libexec", "usr/lib/frr"):
            if os.path.isdir(os.path.join(root, d)):
                mount("tmpfs", os.path.join(root, d), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
        for b in ROUTER_BINARIES:
            open(f"{root}{b}", "w").close()
            bind(b, f"{root}{b}", readonly=True, rec=False)
        os.makedirs(f"{root}/run/frr")
        bind(spec["vty_dir"], f"{root}/run/frr", rec=False)
        # the daemons' sockets are this process's guard (vtyguard.py): the allow-list only
        for guard_path, name in spec.get("vty_guard") or ():
            bind(guard_path, f"{root}/run/frr/{name}", rec=False)
    return root


def drop_privileges(spec: Dict[str, Any]) -> None:
    keep = [CAP_NET_ADMIN, CAP_NET_RAW] if spec["kind"] != "router" else []
    for cap in range(CAP_LAST + 1):
        if cap not in keep:
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                pass               # a cap this kernel does not know
    for res, value in spec["rlimits"]:
        resource.setrlimit(res, (value, value))
    os.setgroups(spec["groups"])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    if keep:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    bits = sum(1 << c for c in keep)
    _capset(bits)
    for cap in keep:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def session_argv(spec: Dict[str, Any]) -> List[str]:
    if spec["kind"] == "router":
        return ["/usr/bin/vtysh", "--vty_socket", "/run/frr", "--config_dir", "/run/frr"]
    return ["/bin/bash", "--noprofile", "--norc", "-i"] if spec["tty"] else ["/bin/bash", "--noprofile", "--norc"]


def session_env(spec: Dict[str, Any]) -> Dict[str, str]:
    env = {"PATH": PATH, "HOME": "/tmp", "USER": spec["user"], "LOGNAME": spec["user"], "LANG": "C.UTF-8",
           "TERM": spec.get("term") or "xterm", "PS1": f"{spec['prompt']}$ ", "HISTFILE": "/tmp/.history"}
    return env


def pid1(spec: Dict[str, Any]) -> int:
    """PID 1 of the session's namespace: mount its /proc, run the session, reap, return its status."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            if spec["tty"]:
                fcntl.ioctl(0, TIOCSCTTY, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            drop_privileges(spec)
            os.chdir("/tmp")
            argv = session_argv(spec)
            os.execve(argv[0], argv, session_env(spec))
        except BaseException as exc:          # never fall back into PID 1's code as the student
            os.write(2, f"door: cannot start the session: {exc}\r\n".encode())
        os._exit(127)
    status = 0
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            status = os.waitstatus_to_exitcode(st)
            break
    return status if status >= 0 else 128 - status


def start_relay(spec: Dict[str, Any]):
    """A router session's vty guard (vtyguard.py) in a child process of this one: in the group's
    cgroups (this process joined them), in the server's PID namespace (a process cannot start a
    thread once it has unshared its PID namespace, and the guard's relay is threads). Its sockets
    are bound here, before the fork, so the sandbox can bind them over the daemons' sockets.
    (guard, relay pid)."""
    guard = vtyguard.Guard(spec["vty_dir"], spec["vty_guard_dir"], spec["gid"], start=False)
    relay = os.fork()
    if relay == 0:
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            null = os.open(os.devnull, os.O_RDWR)       # not the student's terminal
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            guard.start()
            while True:
                signal.pause()
        finally:
            os._exit(0)
    for srv in guard.listeners:                 # the relay serves them; the paths stay
        srv.close()
    return guard, relay


def enter(spec: Dict[str, Any]) -> int:
    for path in spec["cgroup_procs"]:
        with open(path, "w") as fh:
            fh.write(str(os.getpid()))
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    guard, relay = start_relay(spec) if spec["kind"] == "router" else (None, 0)
    try:
        if guard is not None:
            spec["vty_guard"] = vtyguard.mounts(guard)
        fd = os.open(f"/run/netns/{spec['netns']}", os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {spec['netns']}")
        os.close(fd)
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        mount("none", "/", "", MS_REC | MS_PRIVATE)
        host = spec["prompt"].replace(" ", "-")[:60]
        _check(_libc.sethostname(host.encode(), len(host)), "sethostname")
        root = build_root(spec)
        os.chroot(root)
        os.chdir("/")
        child = os.fork()                        # the first child of the new PID namespace is its PID 1
        if child == 0:
            try:
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                os._exit(pid1(spec))
            except BaseException as exc:
                os.write(2, f"door: {exc}\r\n".encode())
                os._exit(126)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _, st = os.waitpid(child, 0)
    finally:
        if relay:
            os.kill(relay, signal.SIGKILL)
            os.waitpid(relay, 0)
        if guard is not None:
            shutil.rmtree(guard.dir, ignore_errors=True)    # the broker does it too, should this die
    code = os.waitstatus_to_exitcode(st)
    return code if code >= 0 else 128 - code


def main() -> int:
    # The spec comes in the environment, not argv: /proc/1/cmdline of the session is readable by
    # the student, /proc/1/environ is not (it is root's).
    spec_text = os.environ.pop(SPEC_ENV, None)
    if spec_text is None or os.geteuid() != 0:
        print("minet_sdn.classroom.sandbox: run by the door broker only", file=sys.stderr)
        return 2
    spec = json.loads(spec_text)
    try:
        return enter(spec)
    except OSError as exc:
        os.write(2, f"door: cannot enter {spec.get('prompt', 'the device')}: {exc}\r\n".encode())
        return 125


if __name__ == "__main__":
    sys.exit(main())
