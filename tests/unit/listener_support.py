"""The real `minet controller` on loopback, and a socket-level OpenFlow 1.3 switch to talk to it.

No root, no Open vSwitch: the controller is the real process (os-ken's listener, the REST server,
the app) started with `python -m minet_sdn.cli.main controller` on free loopback ports, under an
address-space limit so that a regression (an endless parse loop that allocates) cannot take the
machine down. Its threads, memory and CPU are read from /proc.

`WireSwitch` speaks OpenFlow over a real TCP socket the way Open vSwitch does for one remote
bridge of the topology: HELLO, FEATURES_REPLY with the bridge's datapath id, port and flow
multipart replies, barrier and echo replies.
"""
from __future__ import annotations

import json
import os
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from minet_sdn import host

from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "topologies" / "demo.yaml"

OFP_VERSION = 4
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY = 5, 6
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY = 18, 19
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
OFPMP_FLOW, OFPMP_PORT_DESC = 1, 13
OFPPS_LIVE = 1 << 2

MEMORY_LIMIT = 2 << 30       # address space of the controller process under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def header(msg_type: int, length: int, xid: int = 0, version: int = OFP_VERSION) -> bytes:
    return struct.pack("!BBHI", version, msg_type, length, xid)


def frame(msg_type: int, body: bytes = b"", xid: int = 0, version: int = OFP_VERSION) -> bytes:
    return header(msg_type, 8 + len(body), xid, version) + body


def hello(version: int = OFP_VERSION) -> bytes:
    bitmap = struct.pack("!HHI", 1, 8, 1 << version)          # OFPHET_VERSIONBITMAP
    return frame(OFPT_HELLO, bitmap, version=version)


class Controller:
    """One `minet controller` process on free loopback ports."""

    def __init__(self, tmp_path: Path, topology: Path = DEMO, args: Tuple[str, ...] = (),
                 env: Optional[Dict[str, str]] = None, memory_limit: int = MEMORY_LIMIT,
                 nofile: Optional[int] = None):
        self.tmp = Path(tmp_path)
        self.topology = Path(topology)
        self.ofp_port, self.rest_port = free_port(), free_port()
        self.log = self.tmp / "controller.log"
        self.stderr = self.tmp / "controller.stderr"
        argv = [sys.executable, "-m", "minet_sdn.cli.main", "controller", "--topology", str(self.topology),
                "--ofp", f"127.0.0.1:{self.ofp_port}", "--rest", f"127.0.0.1:{self.rest_port}",
                "--state", str(self.tmp / "controller-state.json"), "--log-file", str(self.log), *args]

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=limit, env=full_env, cwd=str(REPO))
        try:
            wait_until(lambda: self.proc.poll() is not None or self.healthz_ok(), 30, what="the controller's REST API")
            if self.proc.poll() is not None:
                raise AssertionError(f"the controller exited {self.proc.returncode}: {self.stderr.read_text()}")
            wait_until(self.ofp_open, 30, what="the controller's OpenFlow listener")
        except BaseException:
            self.stop()
            raise

    # ---- REST ------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def request(self, method: str, path: str, body: Optional[bytes] = None, timeout: float = 10.0):
        req = urllib.request.Request(self.base + path, method=method, data=body,
                                     headers={"X-Minet": "1"} if method == "POST" else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get_json(self, path: str, timeout: float = 10.0):
        status, body = self.request("GET", path, timeout=timeout)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def healthz_ok(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def ofp_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ofp_port), timeout=2):
                return True
        except OSError:
            return False

    # ---- the process -----------------------------------------------------------------------
    def _status(self, key: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def threads(self) -> int:
        return self._status("Threads")

    def rss_kib(self) -> int:
        return self._status("VmRSS")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        host.stop_child(self.proc)


class WireSwitch:
    """A remote bridge of the topology, speaking OpenFlow 1.3 over a real socket.

    `start()` connects and answers in a background thread until `close()`; `silent = True` makes
    it stop answering (and reading), as a hung switch would.
    """

    def __init__(self, port: int, dpid: int, link_ports: List[int] = (), tunnel_live: bool = True):
        self.port, self.dpid = port, dpid
        self.link_ports = list(link_ports)
        self.tunnel_live = tunnel_live
        self.sock: Optional[socket.socket] = None
        self.silent = False
        self.received: List[Tuple[int, int]] = []        # (type, xid)
        self.synced = threading.Event()                    # a barrier came after the flow sync
        self.closed = threading.Event()                    # the controller closed the connection
        self._thread: Optional[threading.Thread] = None
        self._stop = False

    def start(self) -> "WireSwitch":
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.sendall(hello())
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"wire-{self.dpid:x}")
        self._thread.start()
        return self

    def _port_entry(self, port_no: int, name: bytes, state: int) -> bytes:
        mac = bytes([0x0a, 0, 0, 0, port_no >> 8 & 0xFF, port_no & 0xFF])
        return struct.pack("!I4x6s2x16sIIIIIIII", port_no, mac, name, 0, state, 0, 0, 0, 0, 0, 0)

    def _reply(self, msg_type: int, xid: int, body: bytes) -> None:
        if msg_type == OFPT_FEATURES_REQUEST:
            self.sock.sendall(frame(OFPT_FEATURES_REPLY, struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0, 0), xid))
        elif msg_type == OFPT_ECHO_REQUEST:
            self.sock.sendall(frame(OFPT_ECHO_REPLY, body, xid))
        elif msg_type == OFPT_BARRIER_REQUEST:
            self.sock.sendall(frame(OFPT_BARRIER_REPLY, b"", xid))
            self.synced.set()
        elif msg_type == OFPT_MULTIPART_REQUEST:
            mp_type = struct.unpack_from("!H", body)[0]
            entries = b""
            if mp_type == OFPMP_PORT_DESC:
                entries = self._port_entry(1, b"tunnel", OFPPS_LIVE if self.tunnel_live else 0)
                entries += b"".join(self._port_entry(p, b"link%d" % p, 0) for p in self.link_ports)
            self.sock.sendall(frame(OFPT_MULTIPART_REPLY, struct.pack("!HH4x", mp_type, 0) + entries, xid))

    def _run(self) -> None:
        buf = b""
        try:
            while not self._stop:
                if self.silent:          # a hung switch reads nothing: idle, not a wait for anything
                    time.sleep(0.05)
                    continue
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                while len(buf) >= 8:
                    _, msg_type, length, xid = struct.unpack_from("!BBHI", buf)
                    if len(buf) < length:
                        break
                    body, buf = buf[8:length], buf[length:]
                    self.received.append((msg_type, xid))
                    if not self.silent:
                        self._reply(msg_type, xid, body)
        except OSError:
            pass
        self.closed.set()

    def close(self) -> None:
        self._stop = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self._thread is not None:
            self._thread.join(5)


def bridge_switch(ctl: Controller, server: str, peer: str) -> WireSwitch:
    """A WireSwitch for `server`'s remote bridge towards `peer` in the controller's topology."""
    from minet_sdn.topology import load_topology
    topo = load_topology(str(ctl.topology))
    dpid = topo.dpid(server, peer)
    ports = [topo.link(lid).ofport for lid in topo.bridges[dpid].link_ids]
    return WireSwitch(ctl.ofp_port, dpid, ports)
