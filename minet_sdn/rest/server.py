"""Serve a WSGI app on a daemon thread (works with os-ken's native-thread hub and without os-ken).

Hardened for a listener anyone on the management network can reach: a listen backlog that takes
bursts of clients, a timeout on idle or slow connections (each one holds a thread), a cap on
connections served at once, and request bodies over MAX_BODY refused with 413 before they are read.

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
from typing import Callable, Iterable, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

LOG = logging.getLogger(__name__)

BACKLOG = 128
IDLE_TIMEOUT = 10.0          # seconds a connection may stay silent (request line, headers, body)
MAX_CONNECTIONS = 64         # served at once; more are closed at once
MAX_BODY = 64 * 1024         # bytes; our API takes no body at all


class _QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT

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
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
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
        environ["wsgi.input"] = io.BytesIO(body)
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
                    names: Iterable[str] = ()) -> WSGIServer:
    """Serve `app` on `addr`; `names`: host names besides addresses and localhost that clients may
    use in Host (check_host)."""
    cls = _ThreadingServer6 if ":" in addr[0] else _ThreadingServer
    handler = type("_Handler", (_QuietHandler,), {"timeout": idle_timeout})
    server = make_server(addr[0], addr[1], limit_body(check_host(app, names)), server_class=cls,
                         handler_class=handler)
    threading.Thread(target=server.serve_forever, name="minet-rest", daemon=True).start()
    return server
