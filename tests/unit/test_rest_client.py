"""The one REST client (rest/client.py): what every request carries (CSRF header on POSTs, token on
writes, JSON bodies), network-namespace aware, and the lab's and the watch tools' calls go through it.
Against a real HTTP server on loopback that records what it received."""
from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from minet_sdn import host
from minet_sdn.rest import client
from minet_sdn.rest.auth import INSTANCE_HEADER, TOKEN_FILE

TOPOLOGY = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "demo.yaml")


class _Recorder(BaseHTTPRequestHandler):
    seen: list = []
    instance = "demo"
    answer = b'{"ok": true}'
    ctype = "application/json"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        type(self).seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                "body": self.rfile.read(length)})
        self.send_response(200)
        self.send_header("Content-Type", self.ctype)
        self.send_header(INSTANCE_HEADER, self.instance)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)
    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Recorder.seen = []
    _Recorder.instance, _Recorder.answer, _Recorder.ctype = "demo", b'{"ok": true}', "application/json"
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_post_carries_csrf_token_and_json(server):
    status, body = client.request(server, "POST", "/v1/watch/matrix", {"pairs": [1]}, token="t0k")
    assert (status, body) == (200, {"ok": True})
    got = _Recorder.seen[-1]
    assert got["method"] == "POST" and got["path"] == "/v1/watch/matrix"
    assert got["headers"][client.CSRF_HEADER] == client.CSRF_VALUE
    assert got["headers"]["Authorization"] == "Bearer t0k"
    assert got["headers"]["Content-Type"] == "application/json" and json.loads(got["body"]) == {"pairs": [1]}


def test_a_get_carries_neither_csrf_nor_token(server):
    assert client.request(server, "GET", "/v1/links", token="t0k")[0] == 200
    got = _Recorder.seen[-1]
    assert client.CSRF_HEADER not in got["headers"] and "Authorization" not in got["headers"]


def test_a_post_without_body_sends_an_empty_one(server):
    client.call(server, "POST", "/v1/links/1/fail", token="t0k", instance="demo")
    got = _Recorder.seen[-1]
    assert got["body"] == b"" and got["headers"]["Content-Length"] == "0"


def test_another_instance_is_refused_before_decoding(server):
    _Recorder.answer = b"not json"          # never decoded: the instance is checked first
    with pytest.raises(client.OtherInstance):
        client.request(server, "POST", "/v1/links/1/fail", instance="other")
    with pytest.raises(client.OtherInstance):
        client.identify(server, "other")
    client.identify(server, "demo")


def test_bad_json_is_not_our_api_and_text_is_text(server):
    _Recorder.answer = b"{nope"
    with pytest.raises(client.NotOurApi):
        client.request(server, "GET", "/v1/links")
    _Recorder.answer, _Recorder.ctype = b"<html>", "text/html"
    body = client.request(server, "GET", "/ui")[1]
    assert body == "<html>" and body.ctype == "text/html"


def test_nothing_listening_is_unreachable_with_its_reason():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(client.ControllerUnreachable) as info:
        client.request(f"http://127.0.0.1:{port}", "GET", "/v1/links", timeout=2)
    assert isinstance(info.value.reason, ConnectionRefusedError)
    assert str(info.value).startswith(f"cannot reach the controller at http://127.0.0.1:{port}: ")


def _through(monkeypatch):
    """host.netns_connect recording the namespace, connecting on loopback (no root here)."""
    used = []

    def fake(ns, address, port, timeout=5.0):
        used.append(ns)
        return socket.create_connection((address, port), timeout=timeout)
    monkeypatch.setattr(host, "netns_connect", fake)
    return used


def test_netns_opens_the_connection_in_the_namespace(server, monkeypatch):
    used = _through(monkeypatch)
    assert client.request(server, "GET", "/v1/links", netns="x-mgmt")[0] == 200
    assert used == ["x-mgmt"]
    client.request(server, "GET", "/v1/links")
    assert used == ["x-mgmt"]             # without netns: a plain connection


def test_the_lab_calls_through_the_client(server, monkeypatch, tmp_path):
    """Lab.rest_call / rest_call: the client, in the lab's mgmt namespace, with the lab's token."""
    from minet_sdn.lab import LabError, controller
    from minet_sdn.topology import load_topology, names
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path))
    topo = load_topology(TOPOLOGY)
    os.makedirs(tmp_path / topo.name)
    (tmp_path / topo.name / TOKEN_FILE).write_text("lab-token-" + "y" * 32 + "\n")
    used = _through(monkeypatch)
    eff = SimpleNamespace(controller=SimpleNamespace(rest_url=server))
    assert controller.call_controller(topo, eff, "POST", "/v1/reload") == (200, {"ok": True})
    got = _Recorder.seen[-1]
    assert used == [names.mgmt_ns(topo)]
    assert got["headers"][client.CSRF_HEADER] == client.CSRF_VALUE
    assert got["headers"]["Authorization"].startswith("Bearer lab-token-")
    eff = SimpleNamespace(controller=SimpleNamespace(rest_url="http://127.0.0.1:1"))
    with pytest.raises(LabError, match=r"cannot reach the lab's controller at http://127.0.0.1:1 \(in "):
        controller.call_controller(topo, eff, "GET", "/v1/links", timeout=2)


def test_the_watch_tools_call_through_the_client(server, monkeypatch):
    from minet_sdn.lab import controller
    from minet_sdn.topology import load_topology
    from minet_sdn.watch import cli as watch_cli
    topo = load_topology(TOPOLOGY)
    monkeypatch.setattr(controller, "rest_base", lambda t: server)
    monkeypatch.setattr(controller, "token_for", lambda t: "w-token")
    assert watch_cli.controller_call(TOPOLOGY, topo, "POST", "/v1/watch/matrix", {"a": 1}) == (200, {"ok": True})
    got = _Recorder.seen[-1]
    assert got["headers"][client.CSRF_HEADER] == client.CSRF_VALUE and got["headers"]["Authorization"] == "Bearer w-token"
    monkeypatch.setattr(controller, "rest_base", lambda t: "http://127.0.0.1:1")
    assert watch_cli.controller_call(TOPOLOGY, topo, "GET", "/v1/links", timeout=2) is None
