"""A loopback relay to a lab's controller REST API.

The lab's controller listens on the management network, inside namespace `<tag>-mgmt`; plain HTTP
clients in the root namespace (`minet link ...`, curl) cannot reach it. The relay listens on
127.0.0.1:<free port> in the root namespace and forwards every connection to the controller,
opening the far side inside the mgmt namespace. Started and stopped by `lab up`/`lab down`.

    python -m minet_sdn.lab.relay --netns NS --target HOST:PORT --port-file FILE

Every local user can connect to it (reading the API is open to all; writes need the controller's
token), so one user must not be able to starve another, root's CLI above all. The relay knows who
each client is: the owner of the client's socket (/proc/net/tcp, the kernel's own record), and
  * each user other than root may hold at most PER_USER connections, and all of them together
    MAX_CLIENTS - ROOT_RESERVE: root always has room;
  * each user's connections reach the controller from an address of its own (127.x.y.z, from the
    uid), so the controller's per-address limits (rest/server.py) count users apart instead of
    seeing every local user as the one relay.
"""
from __future__ import annotations

import errno
import os
import socket
import threading
import time
import struct
from typing import Dict, Optional, Tuple

from ..host import netns_connect


IDLE_TIMEOUT = 30.0      # seconds a relayed connection may stay silent in one direction; then closed
MAX_CLIENTS = 128        # relayed at once (each costs 2 fds and 2 threads); more are closed at once
ACCEPT_BACKOFF = 0.1     # seconds to wait when accept fails for want of fds or memory
PER_USER = 16            # connections one user other than root may hold at once
ROOT_RESERVE = 16        # of MAX_CLIENTS, never taken by other users
UNKNOWN_UID = -1         # a client whose socket owner could not be read: one more "user"


def _hex_endpoint(text: str) -> Tuple[str, int]:
    """'0100007F:1F90' (/proc/net/tcp, IPv4 in host byte order) as ('127.0.0.1', 8080)."""
    addr, port = text.split(":")
    ip = socket.inet_ntoa(struct.pack("<I", int(addr, 16)))
    return ip, int(port, 16)


def uid_of(table: str, local: Tuple[str, int], remote: Tuple[str, int]) -> Optional[int]:
    """The uid owning the socket whose local end is `local` and far end `remote`, from the text of
    /proc/net/tcp; None when no row matches."""
    for line in table.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        try:
            if _hex_endpoint(f[1]) == local and _hex_endpoint(f[2]) == remote:
                return int(f[7])
        except (ValueError, struct.error, OSError):
            continue
    return None


def peer_uid(client: socket.socket) -> int:
    """Who connected: the owner of the client's end of this loopback connection."""
    try:
        far, near = client.getpeername()[:2], client.getsockname()[:2]
        with open("/proc/net/tcp") as fh:
            uid = uid_of(fh.read(), far, near)
    except OSError:
        return UNKNOWN_UID
    return UNKNOWN_UID if uid is None else uid


def source_address(uid: int) -> str:
    """The address a user's connections come from at the controller: 127.x.y.z from the uid
    (127.0.0.3 for an unknown owner)."""
    if uid < 0:
        return "127.0.0.3"
    return f"127.{1 + (uid >> 16) % 254}.{(uid >> 8) & 255}.{uid & 255}"


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:                 # includes the idle timeout
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def _connect(netns: Optional[str], host: str, port: int, source: Optional[str] = None) -> socket.socket:
    if ":" in host:
        source = None               # IPv6: no per-user loopback addresses to speak from
    try:
        if netns is None:           # the current namespace (tests)
            return socket.create_connection((host, port), timeout=5.0,
                                            source_address=(source, 0) if source else None)
        return netns_connect(netns, host, port, timeout=5.0, source=source)
    except OSError:
        if source is None:
            raise
    # no loopback to speak from there (lo down?): relay all the same, as one client
    return _connect(netns, host, port, None)


def _serve_one(client: socket.socket, netns: Optional[str], host: str, port: int, idle: float,
               source: Optional[str] = None) -> None:
    try:
        try:
            upstream = _connect(netns, host, port, source)
        except OSError:
            return
        try:
            # both sides time out when silent: an idle client no longer holds 2 fds and 2 threads forever
            client.settimeout(idle)
            upstream.settimeout(idle)
            t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            t.start()
            _pump(client, upstream)
            t.join()
        finally:
            upstream.close()
    finally:
        client.close()


class Relay:
    """The listening socket and its accept loop; `serve_forever` never dies of a failed accept."""

    def __init__(self, netns: Optional[str], host: str, port: int, listen: str = "127.0.0.1",
                 idle: float = IDLE_TIMEOUT, max_clients: int = MAX_CLIENTS, per_user: int = PER_USER,
                 root_reserve: int = ROOT_RESERVE, per_user_source: bool = True):
        self.netns, self.host, self.port, self.idle = netns, host, port, idle
        self.slots = threading.BoundedSemaphore(max_clients)
        self.per_user, self.others_max = per_user, max(1, max_clients - root_reserve)
        self.per_user_source = per_user_source
        self.held: Dict[int, int] = {}             # uid: connections it holds now
        self._held_lock = threading.Lock()
        self.refused = self.accept_errors = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen, 0))
        self.sock.listen(64)
        self.listen_port = self.sock.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.accept_errors += 1     # out of fds: wait for connections to end, go on
                    time.sleep(ACCEPT_BACKOFF)
                    continue
                if exc.errno in (errno.EBADF, errno.EINVAL):      # closed: stop
                    return
                continue                       # ECONNABORTED and the like: that client only
            uid = peer_uid(client)
            if not self._take(uid):
                self.refused += 1
                client.close()
                continue
            try:
                threading.Thread(target=self._one, args=(client, uid), daemon=True).start()
            except RuntimeError:               # no thread to be had
                self._give(uid)
                client.close()

    def _take(self, uid: int) -> bool:
        """A slot for a connection of `uid`: root within MAX_CLIENTS, anyone else within its own
        PER_USER and, all of them together, within MAX_CLIENTS - ROOT_RESERVE."""
        with self._held_lock:
            if uid != 0:
                others = sum(n for u, n in self.held.items() if u != 0)
                if self.held.get(uid, 0) >= self.per_user or others >= self.others_max:
                    return False
            if not self.slots.acquire(blocking=False):
                return False
            self.held[uid] = self.held.get(uid, 0) + 1
            return True

    def _give(self, uid: int) -> None:
        with self._held_lock:
            self.held[uid] -= 1
            if not self.held[uid]:
                del self.held[uid]
            self.slots.release()

    def _one(self, client: socket.socket, uid: int) -> None:
        try:
            _serve_one(client, self.netns, self.host, self.port, self.idle,
                       source_address(uid) if self.per_user_source else None)
        finally:
            self._give(uid)

    def close(self) -> None:
        self.sock.close()


def serve(netns: str, host: str, port: int, port_file: str, listen: str = "127.0.0.1") -> None:
    relay = Relay(netns, host, port, listen)
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{relay.listen_port}\n")
    os.replace(tmp, port_file)
    relay.serve_forever()


if __name__ == "__main__":      # the old `python -m minet_sdn.lab.relay`: its parser is in cli/relay.py
    import runpy
    runpy.run_module("minet_sdn.cli.relay", run_name="__main__")
