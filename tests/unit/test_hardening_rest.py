"""Issue 12, the REST door: ids of any length, bodies of any size, bursts of clients and idle
connections, against the app through the fake switches and the real HTTP server on loopback."""
import http.client
import socket
import subprocess
import threading

import pytest

from minet_sdn.rest import server as rest_server
from minet_sdn.rest.api import make_app

from tests.polling import wait_until
from tests.unit.app_harness import one_link_lab

@pytest.fixture
def lab(tmp_path):
    return one_link_lab(tmp_path, "rest")


def test_ids_of_any_length_are_404_not_500(lab):
    for method, path in [("GET", "/v1/links/" + "9" * 4301), ("POST", "/v1/links/" + "1" * 5000 + "/fail"),
                         ("GET", "/v1/links/99"), ("GET", "/v1/links/١"), ("GET", "/v1/links/１"),
                         ("POST", "/v1/links/²/fail"), ("GET", "/v1/links/1\n")]:
        code, _, body = lab.wsgi(method, path)
        assert code == 404, (path[:40], code, body[:200])
    assert lab.wsgi("GET", "/v1/links/1")[0] == 200


TOKEN = "test-token-" + "x" * 32


class Service:
    """Enough of the app for the HTTP server."""
    rest_token = TOKEN

    def health(self):
        return {"status": "ok"}

    def reload(self):
        return {"links": 0}


@pytest.fixture
def served():
    server = rest_server.serve_in_thread(("127.0.0.1", 0), make_app(Service()), idle_timeout=0.5)
    yield server
    server.shutdown()
    server.server_close()


def _port(server):
    return server.server_address[1]


def test_a_body_over_the_cap_is_413_without_being_read(served):
    with socket.create_connection(("127.0.0.1", _port(served)), timeout=5) as s:
        s.sendall(b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000)
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.0 413") or reply.startswith(b"HTTP/1.1 413"), reply[:80]
    conn = http.client.HTTPConnection("127.0.0.1", _port(served), timeout=5)
    conn.request("POST", "/v1/reload", body=b"{}", headers={"X-Minet": "1", "Authorization": f"Bearer {TOKEN}"})
    assert conn.getresponse().status == 200


def test_idle_connections_are_closed(served):
    for first in (b"", b"GET /healthz HTTP/1.1\r\n"):      # nothing at all / never the rest of the headers
        with socket.create_connection(("127.0.0.1", _port(served)), timeout=5) as s:
            s.sendall(first)
            try:
                data = s.recv(4096)           # before: held open forever, one thread each
            except socket.timeout:
                pytest.fail("an idle connection was kept")
            assert data == b"" or data.startswith(b"HTTP/1.0 4"), data


def test_the_listen_backlog_takes_a_burst_of_clients(served):
    port = _port(served)
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
    # for a listening socket ss shows the backlog as Send-Q (was 5: bursts of 20 clients waited 1-2.5 s)
    assert int(out[2]) >= 128, out
    results = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        results.append(conn.getresponse().status)

    threads = [threading.Thread(target=client) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [200] * 40


def test_connections_beyond_the_cap_are_closed_not_queued_forever(monkeypatch):
    monkeypatch.setattr(rest_server, "MAX_CONNECTIONS", 2)
    server = rest_server.serve_in_thread(("127.0.0.1", 0), make_app(Service()), idle_timeout=5)
    try:
        held = [socket.create_connection(("127.0.0.1", _port(server)), timeout=5) for _ in range(2)]
        wait_until(lambda: server._slots._value == 0, 10, what="the server to serve both held connections")
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert extra.recv(100) == b""
        for s in held:
            s.close()
        assert server.refused == 1
    finally:
        server.shutdown()
        server.server_close()


def test_post_needs_the_csrf_header_over_http_and_our_client_sends_it():
    """What a cross-site page can make a browser send (no body, a form, text/plain) is 403 and the
    service is not called; `rest.client.call` (used by `minet link fail|restore`) gets through."""
    from minet_sdn.rest import client
    calls = []

    class Counting(Service):
        def reload(self):
            calls.append(1)
            return {"links": 0}
    server = rest_server.serve_in_thread(("127.0.0.1", 0), make_app(Counting()), idle_timeout=0.5)
    try:
        port = _port(server)
        for body, headers in ((None, {}), (b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}),
                              (b"{}", {"Content-Type": "text/plain"}), (b"", {"X-Minet": "0"})):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/v1/reload", body=body, headers=headers)
            resp = conn.getresponse()
            assert resp.status == 403 and b"X-Minet" in resp.read(), (body, headers)
            conn.close()
        assert calls == []
        assert client.call(f"http://127.0.0.1:{port}", "POST", "/v1/reload", token=TOKEN) == (200, {"links": 0})
        assert calls == [1]
    finally:
        server.shutdown()
        server.server_close()
