"""The door shell: what a student lands in after `ssh -p PORT USER@ADDRESS` (sshd's ForceCommand,
run as the group's unprivileged user). It holds nothing itself: the broker says which devices the
group has, and enters one on `goto`. The line is parsed by goto.py (no shell ever sees it).

On a terminal, a device runs on a fresh pseudo-terminal whose far side this shell relays (raw mode,
window size passed on), so Ctrl-C reaches ping, not the door. Without a terminal (`ssh ... <<EOF`),
the device gets this shell's stdin/stdout/stderr directly.
"""
from __future__ import annotations

import array
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import select
import signal
import socket
import sys
import termios
import tty
from typing import Dict, List, Optional

from . import goto

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def request(sock: socket.socket, obj: Dict, fds: List[int] = ()) -> None:
    data = (json.dumps(obj) + "\n").encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def read_line(sock: socket.socket) -> Optional[Dict]:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buf += chunk
    return json.loads(buf.decode())


def drop_network() -> None:
    """This process needs no network, only the broker's socket: an empty network namespace of
    its own (an unprivileged user namespace); best effort (the kernel may not allow it)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)


class Door:
    def __init__(self, sock_path: str):
        self.sock_path = sock_path
        self.control = connect(sock_path)
        request(self.control, {"op": "hello"})
        answer = read_line(self.control)
        if not answer or "error" in answer:
            raise SystemExit(f"door: {answer.get('error') if answer else 'the broker did not answer'}")
        self.asn = answer["asn"]
        self.user = answer["user"]
        self.devices = {k: goto.Device(k, kind, "") for k, kind in answer["devices"]}
        self.tty = os.isatty(0) and os.isatty(1)

    def vsctl(self, key: str, argv: List[str]):
        """(code, stdout, stderr) of one ovs-vsctl command on switch `key`, run by the broker."""
        s = connect(self.sock_path)
        try:
            request(s, {"op": "vsctl", "device": key, "argv": argv})
            answer = read_line(s) or {"error": "the broker did not answer"}
        finally:
            s.close()
        if "error" in answer:
            return 1, "", f"door: {answer['error']}\n"
        return int(answer["code"]), str(answer["out"]), str(answer["err"])

    def enter(self, key: str) -> int:
        s = connect(self.sock_path)
        try:
            if self.tty:
                return self._enter_tty(s, key)
            request(s, {"op": "goto", "device": key}, [0, 1, 2])
            return self._wait(s, None)
        finally:
            s.close()

    def _enter_tty(self, s: socket.socket, key: str) -> int:
        master, slave = os.openpty()
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        request(s, {"op": "goto", "device": key, "term": os.environ.get("TERM", "xterm")}, [slave])
        os.close(slave)
        saved = termios.tcgetattr(0)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: self._winch(master))
        try:
            tty.setraw(0)
            return self._wait(s, master)
        finally:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, old_winch)
            os.close(master)

    @staticmethod
    def _winch(master: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))

    def _wait(self, s: socket.socket, master: Optional[int]) -> int:
        """Relay the terminal (if any) until the broker reports the session's exit."""
        buf = b""
        inputs = [s] + ([0, master] if master is not None else [])
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master is not None and master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as exc:      # EIO: every process of the session closed it
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    inputs.remove(master)
                    inputs.remove(0)
            if 0 in ready and 0 in inputs:
                data = os.read(0, 65536)
                if not data:
                    return 0
                os.write(master, data)
            if s in ready:
                chunk = s.recv(4096)
                if not chunk:
                    return 1
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line.decode())
                    if "error" in msg:
                        os.write(2, f"door: {msg['error']}\r\n".encode())
                        return 1
                    if "exit" in msg:
                        if master is not None and master in inputs:   # what the session wrote last
                            with contextlib.suppress(OSError):
                                while select.select([master], [], [], 0.05)[0]:
                                    data = os.read(master, 65536)
                                    if not data:
                                        break
                                    os.write(1, data)
                        return int(msg["exit"])


def run(sock_path: str) -> int:
    drop_network()
    door = Door(sock_path)
    out = sys.stdout
    print(goto.welcome(door.asn, door.user, door.devices), flush=True)
    readline = None
    if door.tty:
        import readline
        _door_completion(readline, door)
        readline.parse_and_bind("tab: complete")
    for cmd in commands(door.tty, f"AS{door.asn}> ", lambda line: goto.parse(line, door.devices), "door"):
        if cmd.verb == "help":
            print(goto.HELP, file=out, flush=True)
        elif cmd.verb == "devices":
            print(goto.welcome(door.asn, door.user, door.devices), file=out, flush=True)
        elif cmd.verb == "goto" and door.devices[cmd.device].kind == "switch":
            code = switch_shell(door, cmd.device)
            if door.tty:
                _door_completion(readline, door)
            print(f"(back at the door of AS{door.asn})", file=out, flush=True)
        elif cmd.verb == "goto":
            code = door.enter(cmd.device)
            print(f"\r\n(back at the door of AS{door.asn}; {cmd.device} exited with {code})", file=out, flush=True)
    return 0


def commands(tty: bool, prompt: str, parse, who: str):
    """The commands typed at a prompt (the door's, a switch's), parsed by `parse` (goto.py), until
    EOF or `exit`: a refused line is answered `<who>: why` and skipped, Ctrl-C gives a new prompt."""
    out = sys.stdout
    while True:
        try:
            line = input(prompt) if tty else _read_plain(prompt)
        except EOFError:
            print("", file=out)
            return
        except KeyboardInterrupt:
            print("", file=out)
            continue
        try:
            cmd = parse(line)
        except goto.Refused as exc:
            print(f"{who}: {exc}", file=out, flush=True)
            continue
        if cmd.verb == "exit":
            return
        yield cmd


def _door_completion(readline, door: "Door") -> None:
    readline.set_completer_delims("")
    state: Dict[str, List[str]] = {}
    readline.set_completer(lambda text, n: _complete(readline, door, text, n, state))


def switch_shell(door: "Door", key: str) -> int:
    """`goto SWITCH`: a prompt taking ovs-vsctl commands for that switch. Nothing runs here: each
    command goes, as a list of words, to the broker, which runs the students' ovs-vsctl (l2ctl)."""
    out = sys.stdout
    ports: List[str] = []
    code, text, _ = door.vsctl(key, ["list-ports", "br0"])
    if code == 0:
        ports = text.split()
    if door.tty:
        import readline
        readline.set_completer_delims("")
        state: Dict[str, List[str]] = {}

        def completer(text: str, n: int) -> Optional[str]:
            if n == 0:
                state["c"] = goto.complete_switch(text, ports)
            return state["c"][n] if n < len(state["c"]) else None
        readline.set_completer(completer)
    print(f"switch {key} of AS{door.asn}: ovs-vsctl on this switch only (its bridge is br0); help, exit",
          file=out, flush=True)
    for cmd in commands(door.tty, f"AS{door.asn}-{key}$ ", goto.parse_switch, "ovs-vsctl"):
        if cmd.verb == "help":
            print(goto.SWITCH_HELP, file=out, flush=True)
        elif cmd.verb == "vsctl":
            code, text, err = door.vsctl(key, list(cmd.argv))
            out.write(text + err)
            out.flush()
    return 0


def _read_plain(prompt: str) -> str:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _complete(readline, door: Door, text: str, n: int, state: Dict[str, List[str]]) -> Optional[str]:
    """readline's completer: whole-line completions (delimiters are off, so `text` is the line)."""
    if n == 0:
        state["c"] = _line_completions(text, door)
    opts = state["c"]
    return opts[n] if n < len(opts) else None


def _line_completions(line: str, door: Door) -> List[str]:
    words = line.split()
    options = goto.complete(line, door.devices)
    if not words or (len(words) == 1 and not line.endswith(" ")):
        return options
    head = "goto "
    return [head + o for o in options]


def main() -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) != 2:
        print("door: misconfigured (no broker socket)", file=sys.stderr)
        return 2
    try:
        return run(sys.argv[1])
    except (OSError, ValueError) as exc:
        print(f"door: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
