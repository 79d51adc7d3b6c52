"""A loopback relay to a lab's controller REST API.

The lab's controller listens on the management network, inside namespace `<tag>-mgmt`; plain HTTP
clients in the root namespace (`minet link ...`, curl) cannot reach it. The relay listens on
127.0.0.1:<free port> in the root namespace and forwards every connection to the controller,
opening the far side inside the mgmt namespace. Started and stopped by `lab up`/`lab down`.

    python -m minet_sdn.lab.relay --netns NS --target HOST:PORT --port-file FILE
"""
from __future__ import annotations

import errno
import os
import socket
import threading
import time
from typing import List, Optional

from .system import netns_connect


IDLE_TIMEOUT = 30.0      # seconds a relayed connection may stay silent in one direction; then closed
MAX_CLIENTS = 128        # relayed at once (each costs 2 fds and 2 threads); more are closed at once
ACCEPT_BACKOFF = 0.1     # seconds to wait when accept fails for want of fds or memory


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


def _connect(netns: Optional[str], host: str, port: int) -> socket.socket:
    if netns is None:               # the current namespace (tests)
        return socket.create_connection((host, port), timeout=5.0)
    return netns_connect(netns, host, port, timeout=5.0)


def _serve_one(client: socket.socket, netns: Optional[str], host: str, port: int, idle: float) -> None:
    try:
        try:
            upstream = _connect(netns, host, port)
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
                 idle: float = IDLE_TIMEOUT, max_clients: int = MAX_CLIENTS):
        self.netns, self.host, self.port, self.idle = netns, host, port, idle
        self.slots = threading.BoundedSemaphore(max_clients)
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
            if not self.slots.acquire(blocking=False):
                self.refused += 1
                client.close()
                continue
            try:
                threading.Thread(target=self._one, args=(client,), daemon=True).start()
            except RuntimeError:               # no thread to be had
                self.slots.release()
                client.close()

    def _one(self, client: socket.socket) -> None:
        try:
            _serve_one(client, self.netns, self.host, self.port, self.idle)
        finally:
            self.slots.release()

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
