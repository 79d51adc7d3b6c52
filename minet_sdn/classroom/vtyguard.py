"""The vty guard: what a student's vtysh may ask of their router's FRR daemons.

Every router's daemons run as the one `frr` user, which owns every router's FRR directory on the
server. vtysh runs as the student (sandbox.py), but some commands make a *daemon* open a file by a
path the student chooses: `log file PATH`, `log filtered-file PATH`, `log extended NAME` + `destination file PATH` (or an fd
of the daemon), `dump bgp ... PATH`, `banner motd file PATH`. The daemon would open it as `frr`, on
the server's filesystem: another router's `frr.conf`, a full disk. The sandbox cannot stop that (the
daemon is not in it), so the broker stands between vtysh and the daemons: for a router session,
each daemon socket the sandbox shows (`/run/frr/<daemon>.vty`) is a socket of this guard, which
relays to the real one and refuses those commands.

The vty protocol (FRR lib/vty.c, vtysh/vtysh.c): vtysh sends one command line ending in a NUL byte
and waits; the daemon answers with the output, then a 4-byte trailer `\\0\\0\\0<status>` (status 1:
a warning, printed by vtysh). The daemon may pass a file descriptor with the trailer (`terminal
monitor`), so the daemon-to-vtysh direction is relayed with its SCM_RIGHTS as it comes.

Commands are matched the way FRR matches them: word by word, any unambiguous prefix of a keyword
(`lo fi /x` is `log file /x`), after any leading `do`. Refusing a prefix that FRR would have found
ambiguous costs nothing.
"""
from __future__ import annotations

import array
import contextlib
import os
import shutil
import socket
import threading
from typing import List, Optional, Sequence, Tuple

CMD_WARNING = 1
# (keywords, why) the daemon would open a path, or one of its own descriptors, for the student
REFUSED: Tuple[Tuple[Tuple[str, ...], str], ...] = (
    (("log", "file"), "a log file is written by the router's daemons: not from a door"),
    (("log", "filtered-file"), "a log file is written by the router's daemons: not from a door"),
    (("log", "extended"), "extended log targets are written by the router's daemons: not from a door"),
    (("destination",), "log destinations are opened by the router's daemons: not from a door"),
    (("dump", "bgp"), "MRT dumps are written by bgpd: not from a door"),
    (("banner", "motd", "file"), "a banner file is read by the router's daemons: not from a door"),
)
MAX_COMMAND = 1 << 16


def refusal(line: str) -> Optional[str]:
    """Why the daemons must not run `line` from a student's vtysh, or None."""
    words = line.split()
    while words and words[0] == "do":
        words = words[1:]
    for keywords, why in REFUSED:
        if len(words) >= len(keywords) and all(k.startswith(w.lower()) for w, k in zip(words, keywords)):
            return why
    return None


def _close(*socks) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


class Guard:
    """One router session's guarded daemon sockets: `sockets` [(daemon socket name, guard path)]."""

    def __init__(self, vty_dir: str, session_dir: str, gid: int):
        self.vty_dir = vty_dir
        self.dir = session_dir
        self.listeners: List[socket.socket] = []
        self.conns: List[socket.socket] = []
        self.sockets: List[Tuple[str, str]] = []
        self.lock = threading.Lock()
        os.makedirs(session_dir, mode=0o711)
        for name in sorted(os.listdir(vty_dir)):
            real = os.path.join(vty_dir, name)
            if not name.endswith(".vty") or not _is_socket(real):
                continue
            path = os.path.join(session_dir, name)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)          # the group's vtysh only (its gid), not the other groups
            srv.listen(8)
            self.listeners.append(srv)
            self.sockets.append((name, path))
            threading.Thread(target=self._accept, args=(srv, real), daemon=True).start()

    def _accept(self, srv: socket.socket, real: str) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                daemon.connect(real)
            except OSError:
                _close(client, daemon)
                continue
            with self.lock:
                self.conns += [client, daemon]
            threading.Thread(target=self._to_daemon, args=(client, daemon), daemon=True).start()
            threading.Thread(target=self._to_client, args=(daemon, client), daemon=True).start()

    @staticmethod
    def _to_daemon(client: socket.socket, daemon: socket.socket) -> None:
        """vtysh -> daemon, one NUL-terminated command at a time; refused ones answered here."""
        buf = b""
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\0" in buf:
                    cmd, buf = buf.split(b"\0", 1)
                    why = refusal(cmd.decode("utf-8", "replace"))
                    if why is None:
                        daemon.sendall(cmd + b"\0")
                    else:
                        client.sendall(f"% {why}\n".encode() + b"\0\0\0" + bytes([CMD_WARNING]))
                if len(buf) > MAX_COMMAND:
                    break
        except OSError:
            pass
        _close(client, daemon)

    @staticmethod
    def _to_client(daemon: socket.socket, client: socket.socket) -> None:
        """daemon -> vtysh as it comes, descriptors passed on."""
        fdsize = array.array("i").itemsize
        try:
            while True:
                data, anc, _flags, _addr = daemon.recvmsg(65536, socket.CMSG_SPACE(4 * fdsize))
                fds = array.array("i")
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[:len(payload) - len(payload) % fdsize])
                try:
                    if not data and not fds:
                        break
                    if fds:
                        client.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                    else:
                        client.sendall(data)
                finally:
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            os.close(fd)
        except OSError:
            pass
        _close(client, daemon)

    def close(self) -> None:
        _close(*self.listeners)
        with self.lock:
            _close(*self.conns)
        shutil.rmtree(self.dir, ignore_errors=True)


def _is_socket(path: str) -> bool:
    import stat
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def mounts(guard: Optional[Guard]) -> Sequence[Tuple[str, str]]:
    """(guard socket, name in /run/frr) the sandbox binds over the daemons' sockets."""
    return [(path, name) for name, path in guard.sockets] if guard else []
