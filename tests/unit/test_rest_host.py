"""DNS rebinding: the REST listener serves only requests whose Host names the controller (an IP
literal, localhost, or a name given with --rest-name), over the real HTTP server on loopback."""
import http.client
import subprocess
import sys
from pathlib import Path

import pytest

from minet_sdn.rest import server as rest_server
from minet_sdn.rest.api import make_app

ROOT = Path(__file__).resolve().parents[2]


class Service:
    def health(self):
        return {"status": "ok"}


@pytest.fixture
def served():
    server = rest_server.serve_in_thread(("127.0.0.1", 0), make_app(Service()), names=["ctl.lab.example"])
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def request(port, method, path, host):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest(method, path, skip_host=True)
    if host is not None:
        conn.putheader("Host", host)
    if method == "POST":
        conn.putheader("X-Minet", "1")
        conn.putheader("Content-Length", "0")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "[::1]", "10.254.0.1:8080",
                                  "localhost", "LOCALHOST:80", "ctl.lab.example", "CTL.lab.example.:8080", None])
def test_addresses_and_our_names_are_served(served, host):
    status, body = request(served, "GET", "/healthz", host)
    assert status == 200, body


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example",
                                  "localhost.attacker.example", "lab.example", "ctl.lab.example.evil", ""])
def test_other_names_are_refused_before_anything_is_done(served, host):
    for method, path in (("GET", "/healthz"), ("POST", "/v1/links/1/fail")):
        status, body = request(served, method, path, host)
        assert status == 403 and b"Host header does not name this controller" in body


def test_bad_rest_name_is_one_line_exit_2():
    res = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "controller", "--topology",
                          "topologies/minimal.yaml", "--rest-name", "bad name!"], capture_output=True, text=True,
                         timeout=60, cwd=str(ROOT))
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line == "minet controller: --rest-name 'bad name!' is not a DNS name"
