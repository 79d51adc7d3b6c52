"""Serve a WSGI app on a daemon thread (works with os-ken's native-thread hub and without os-ken)."""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import Callable, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

LOG = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):      # route access logs to logging, not stderr
        LOG.debug("%s " + fmt, self.client_address[0], *args)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve_in_thread(addr: Tuple[str, int], app: Callable) -> WSGIServer:
    cls = _ThreadingServer6 if ":" in addr[0] else _ThreadingServer
    server = make_server(addr[0], addr[1], app, server_class=cls, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="minet-rest", daemon=True).start()
    return server
