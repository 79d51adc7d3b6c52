"""The door broker: the one root process of a machine's doors. A door shell (unprivileged, the
group's user) asks it, over a Unix socket, to enter a device; the broker believes only the
kernel about who asks (SO_PEERCRED: the uid is the group), checks the device against that group's
list, and starts the sandbox (sandbox.py) on the terminal the shell passed (SCM_RIGHTS).

Protocol: one JSON line each way per request, on a fresh connection.
  {"op": "hello"}                      -> {"ok": true, "asn", "user", "devices": [[key, kind], ...]}
                                          the asking process joins the group's cgroups; the
                                          connection stays open while the door shell lives
                                          (it counts towards limits.sessions)
  {"op": "goto", "device": KEY, "term": T} + fds (the terminal: 1 fd, or stdin/stdout/stderr: 3)
                                       -> {"ok": true} ... {"exit": N}   or   {"error": "..."}
  {"op": "vsctl", "device": KEY, "argv": [...]}   one students' ovs-vsctl command on the group's
                                       switch KEY (provision/l2ctl.py's allow-list, run as root in a
                                       process of the group's cgroups: charged.py)
                                       -> {"code": N, "out": "...", "err": "..."}   or   {"error": "..."}
Run as `python -I -m minet_sdn.classroom.broker PLAN.json` (doors.py writes the plan, 0600 root).
"""
from __future__ import annotations

import array
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from . import cgroups
from .sandbox import SPEC_ENV
from .settings import Limits

MAX_REQUEST = 4096


def recv_request(conn: socket.socket) -> Tuple[Optional[Dict[str, Any]], List[int]]:
    fds = array.array("i")
    data, anc, _flags, _addr = conn.recvmsg(MAX_REQUEST, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    try:
        req = json.loads(data.split(b"\n", 1)[0].decode("ascii"))
        return (req if isinstance(req, dict) else None), list(fds)
    except (ValueError, UnicodeDecodeError):
        return None, list(fds)


def send(conn: socket.socket, obj: Dict[str, Any]) -> None:
    try:
        conn.sendall((json.dumps(obj) + "\n").encode())
    except OSError:
        pass


class Broker:
    def __init__(self, plan: Dict[str, Any]):
        self.plan = plan
        self.groups: Dict[int, Dict[str, Any]] = {int(uid): g for uid, g in plan["groups"].items()}
        self.limits = Limits(**plan["limits"])
        self.mode = plan["cgroup_mode"]
        self.sessions: Dict[int, int] = {}
        self.lock = threading.Lock()

    def cgroup_plan(self, asn: int) -> cgroups.Plan:
        return cgroups.plan(self.mode, self.plan["tag"], asn, self.limits)

    def serve(self) -> None:
        path = self.plan["socket"]
        if os.path.exists(path):
            os.unlink(path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        os.chmod(path, 0o666)             # anyone may ask; only the groups' uids get an answer
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        fds: List[int] = []
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", creds)
            group = self.groups.get(uid)
            conn.settimeout(10)
            req, fds = recv_request(conn)
            if group is None:
                send(conn, {"error": "this door is not yours"})
                return
            if req is None:
                send(conn, {"error": "bad request"})
                return
            if req.get("op") == "hello":
                self.hello(conn, pid, group)
            elif req.get("op") == "goto":
                self.goto(conn, req, fds, group)
            elif req.get("op") == "vsctl":
                self.vsctl(conn, req, group)
            else:
                send(conn, {"error": "bad request"})
        except OSError:
            pass
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            conn.close()

    def hello(self, conn: socket.socket, pid: int, group: Dict[str, Any]) -> None:
        asn = group["asn"]
        with self.lock:
            if self.sessions.get(asn, 0) >= self.limits.sessions:
                send(conn, {"error": f"group {asn} already has {self.limits.sessions} sessions open"})
                return
            self.sessions[asn] = self.sessions.get(asn, 0) + 1
        try:
            try:
                cgroups.join(self.cgroup_plan(asn), pid)
            except OSError:
                pass                       # rlimits still bound the group's sessions
            send(conn, {"ok": True, "asn": asn, "user": group["user"],
                        "devices": [[k, d["kind"]] for k, d in group["devices"].items()]})
            conn.settimeout(None)
            while conn.recv(64):           # held open while the door shell lives
                pass
        finally:
            with self.lock:
                self.sessions[asn] -= 1

    def goto(self, conn: socket.socket, req: Dict[str, Any], fds: List[int], group: Dict[str, Any]) -> None:
        key = req.get("device")
        device = group["devices"].get(key) if isinstance(key, str) else None
        if device is None:
            send(conn, {"error": "no such device in your AS"})
            return
        if device["kind"] == "switch":       # a switch is entered by its own shell (vsctl), never a sandbox
            send(conn, {"error": "a switch takes ovs-vsctl commands only"})
            return
        if len(fds) not in (1, 3):
            send(conn, {"error": "bad request (no terminal)"})
            return
        term = req.get("term")
        term = term if isinstance(term, str) and term.replace("-", "").isalnum() and len(term) < 40 else "xterm"
        asn = group["asn"]
        cg = self.cgroup_plan(asn)
        groups = [group["gid"]] + ([self.plan["frrvty_gid"]] if device["kind"] == "router" else [])
        spec = {"netns": device["netns"], "kind": device["kind"], "vty_dir": device.get("vty_dir"),
                "uid": group["uid"], "gid": group["gid"], "groups": groups, "user": group["user"],
                "stage": self.plan["stage"], "tty": len(fds) == 1, "term": term,
                "prompt": f"AS{asn} {key}", "cgroup_procs": list(cg.procs),
                "rlimits": cgroups.rlimits(self.mode, self.limits)}
        if device["kind"] == "router":     # the sandbox relays vtysh through the guard (vtyguard.py), in the group's cgroups
            spec["vty_guard_dir"] = os.path.join(os.path.dirname(self.plan["socket"]), "vty", os.urandom(8).hex())
        stdio = (fds[0], fds[0], fds[0]) if len(fds) == 1 else tuple(fds)
        try:
            code = self._run_sandbox(conn, spec, stdio, fds)
        finally:
            if "vty_guard_dir" in spec:    # the sandbox removes it; not when it was killed
                shutil.rmtree(spec["vty_guard_dir"], ignore_errors=True)
        if device["kind"] == "router":
            self.keep_config_readable(device)
        send(conn, {"exit": code})

    def _run_sandbox(self, conn, spec, stdio, fds) -> int:
        proc = subprocess.Popen([sys.executable, "-I", "-m", "minet_sdn.classroom.sandbox"],
                                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], close_fds=True,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", SPEC_ENV: json.dumps(spec)})
        for fd in fds:
            os.close(fd)
        fds.clear()
        send(conn, {"ok": True})
        return proc.wait()

    def vsctl(self, conn: socket.socket, req: Dict[str, Any], group: Dict[str, Any]) -> None:
        """One ovs-vsctl command on one of the group's switches: the switch and its map come from
        the plan, the arguments from the request, checked word by word by l2ctl (no shell)."""
        key, argv = req.get("device"), req.get("argv")
        device = group["devices"].get(key) if isinstance(key, str) else None
        if device is None or device["kind"] != "switch" or not device.get("l2_map"):
            send(conn, {"error": "no such switch in your AS"})
            return
        if (not isinstance(argv, list) or len(argv) > 32
                or not all(isinstance(a, str) and len(a) <= 200 and a.isascii() and a.isprintable() for a in argv)):
            send(conn, {"error": "bad request"})
            return
        send(conn, self.charged(group["asn"], {"map": device["l2_map"], "switch": device["node"], "argv": argv}))

    def charged(self, asn: int, spec: Dict[str, Any]) -> Dict[str, Any]:
        """One switch command, run in group `asn`'s cgroups (charged.py), not in the broker."""
        spec = dict(spec, procs=list(self.cgroup_plan(asn).procs))
        try:
            proc = subprocess.run([sys.executable, "-I", "-m", "minet_sdn.classroom.charged"], input=json.dumps(spec),
                                  capture_output=True, text=True, timeout=60, cwd="/",
                                  env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
            answer = json.loads(proc.stdout or "{}")
        except subprocess.TimeoutExpired:
            return {"error": "the switch command took too long"}
        except ValueError:
            return {"error": f"the switch command failed ({proc.stderr.strip()[-200:] or proc.returncode})"}
        if "error" in answer:
            return {"error": str(answer["error"])}
        return {"code": int(answer.get("code", 1)), "out": str(answer.get("out", ""))[:65536],
                "err": str(answer.get("err", ""))[:4096]}

    def keep_config_readable(self, device: Dict[str, Any]) -> None:
        """vtysh run as the group's user writes frr.conf as that user: give it back to frr (the
        daemons read it at restart) and keep the group's write access."""
        path = os.path.join(device["vty_dir"], "frr.conf")
        try:      # never follow what the group may have put there (a symlink, a hard link)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid != self.plan["frr_uid"]:
                os.fchown(fd, self.plan["frr_uid"], device["dir_gid"])
                os.fchmod(fd, 0o660)
        except (OSError, KeyError):
            pass
        finally:
            os.close(fd)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -I -m minet_sdn.classroom.broker PLAN.json", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as fh:
        plan = json.load(fh)
    try:
        Broker(plan).serve()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
