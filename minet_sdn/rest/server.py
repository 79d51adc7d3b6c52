"""Serve a WSGI app on a daemon thread (works with os-ken's native-thread hub and without os-ken).

Hardened for a listener anyone on the management network can reach: a listen backlog that takes
bursts of clients, a timeout on idle connections and a total deadline on each request however slowly
it trickles in (each connection holds a thread), a cap on connections served at once and on those of
one address still sending their request (slowloris: a new one evicts that address's oldest), and
request bodies over MAX_BODY refused with 413 before they are read.

And against DNS rebinding: a web page from elsewhere whose name an attacker re-points at our address
would be same-origin with it, so the X-Minet header (api.py) would no longer stop its POSTs. Its
requests still carry that name in Host, so only Host values that name the controller are served:
an IP literal, `localhost`, or a name given with `minet controller --rest-name` (403 otherwise).
"""
from __future__ import annotations

import io
import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections import OrderedDict
from typing import Callable, Dict, Iterable, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

LOG = logging.getLogger(__name__)

BACKLOG = 128
IDLE_TIMEOUT = 10.0          # seconds a connection may stay silent (request line, headers, body)
REQUEST_DEADLINE = 10.0      # seconds to send the whole request, however it trickles in (slowloris)
MAX_CONNECTIONS = 64         # served at once; more are closed at once
MAX_READING_PER_CLIENT = 8   # connections of one address still sending their request; the oldest goes
MAX_BODY = 64 * 1024         # bytes; our API takes no body at all
READ_DONE = "minet.read_done"   # environ key: call it once the request is read in full


class _DeadlineReader(io.RawIOBase):
    """The connection's reads, each bounded by the idle timeout AND by what is left of the request's
    total deadline: a client sending one byte every few seconds no longer holds a slot forever."""

    def __init__(self, sock: socket.socket, idle: float, deadline: float):
        super().__init__()
        self._sock, self._idle, self._deadline = sock, idle, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("request deadline passed")
        self._sock.settimeout(min(self._idle, left))
        return self._sock.recv_into(buf)


class _QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT
    deadline = REQUEST_DEADLINE

    def setup(self):
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self.timeout,
                                                       time.monotonic() + self.deadline))

    def get_environ(self):
        env = super().get_environ()
        env[READ_DONE] = lambda: self.server.read_done(self.connection)
        return env

    def log_message(self, fmt, *args):      # route access logs to logging, not stderr
        LOG.debug("%s " + fmt, self.client_address[0], *args)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG
    block_on_close = False

    def __init__(self, *args, **kwargs):
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0
        self.evicted = 0
        # per client address, its connections still sending their request, oldest first
        self._reading: Dict[str, "OrderedDict[socket.socket, None]"] = {}
        self._reading_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        self._note_reading(request, client_address[0])
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.read_done(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.read_done(request)
            self._slots.release()
            raise

    def _note_reading(self, request, client: str) -> None:
        """One address may have MAX_READING_PER_CLIENT connections still sending their request; a new
        one evicts the oldest (its thread sees the connection end). Our clients send a request at
        once, so they are never the oldest for long; a slow one can only evict its own kind."""
        with self._reading_lock:
            mine = self._reading.setdefault(client, OrderedDict())
            while len(mine) >= MAX_READING_PER_CLIENT:
                oldest, _ = mine.popitem(last=False)
                self.evicted += 1
                try:
                    oldest.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            mine[request] = None

    def read_done(self, request) -> None:
        with self._reading_lock:
            for client, mine in list(self._reading.items()):
                if request in mine:
                    del mine[request]
                    if not mine:
                        del self._reading[client]
                    return

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.read_done(request)
            self._slots.release()


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def limit_body(app: Callable, max_body: int = MAX_BODY) -> Callable:
    """413 for a declared body over `max_body` (never read); a smaller one is read here, in full, and
    handed to the app as a fresh stream (the status page's POSTs carry JSON), so the connection
    closes cleanly whatever the app reads of it."""
    def limited(environ, start_response):
        raw = environ.get("CONTENT_LENGTH") or "0"
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            return _plain(start_response, "400 Bad Request", b'{"error": "bad Content-Length"}\n')
        length = int(raw)
        if length > max_body:
            return _plain(start_response, "413 Payload Too Large",
                          b'{"error": "request body too large (at most %d bytes)"}\n' % max_body)
        stream = environ.get("wsgi.input")
        body = stream.read(length) if length and stream is not None else b""
        if len(body) < length:
            return _plain(start_response, "400 Bad Request", b'{"error": "request body cut short"}\n')
        environ["wsgi.input"] = io.BytesIO(body)
        done = environ.get(READ_DONE)
        if done is not None:
            done()                      # read in full: no longer a slow client's connection
        return app(environ, start_response)
    return limited


def host_name(host: str) -> str:
    """The name part of a Host header value: without the port, the brackets of an IPv6 literal
    and a trailing dot; lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(host: str, names: Iterable[str] = ()) -> bool:
    """`names` as check_host keeps them: lower case, no trailing dot."""
    name = host_name(host)
    if name == "localhost" or name in names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_host(app: Callable, names: Iterable[str] = ()) -> Callable:
    """403 for a request whose Host names something else than this controller (see above). A
    request without Host (HTTP/1.0 tools) is served: browsers always send it."""
    names = frozenset(n.lower().rstrip(".") for n in names)

    def checked(environ, start_response):
        host = environ.get("HTTP_HOST")
        if host is not None and not host_allowed(host, names):
            return _plain(start_response, "403 Forbidden",
                          b'{"error": "Host header does not name this controller: use its address, '
                          b'or start it with --rest-name NAME"}\n')
        return app(environ, start_response)
    return checked


def _plain(start_response, status: str, body: bytes):
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def serve_in_thread(addr: Tuple[str, int], app: Callable, idle_timeout: float = IDLE_TIMEOUT,
                    names: Iterable[str] = (), deadline: float = REQUEST_DEADLINE,
                    max_body: int = MAX_BODY) -> WSGIServer:
    """Serve `app` on `addr`; `names`: host names besides addresses and localhost that clients may
    use in Host (check_host); `deadline`: seconds a client has to send its whole request;
    `max_body`: the biggest request body taken (the controller's grows with its topology's matrix)."""
    cls = _ThreadingServer6 if ":" in addr[0] else _ThreadingServer
    handler = type("_Handler", (_QuietHandler,), {"timeout": idle_timeout, "deadline": deadline})
    server = make_server(addr[0], addr[1], limit_body(check_host(app, names), max_body), server_class=cls,
                         handler_class=handler)
    threading.Thread(target=server.serve_forever, name="minet-rest", daemon=True).start()
    return server
