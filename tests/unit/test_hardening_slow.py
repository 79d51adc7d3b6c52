"""Issue 21 item 4: slowloris. 80 slow connections on the controller's REST server leave it usable;
a request trickling in is cut at its total deadline; the lab's relay closes idle connections, caps
them and survives running out of file descriptors in accept. Loopback only, bounded in time and count."""
import http.client
import os
import resource
import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest

from minet_sdn.rest import server as rest_server
from minet_sdn.rest.api import make_app

from tests.polling import wait_until
from tests.unit.test_hardening_rest import Service

SLOW = 80


def _port(server):
    return server.server_address[1]


def test_80_slow_connections_leave_the_server_usable():
    server = rest_server.serve_in_thread(("127.0.0.1", 0), make_app(Service()), idle_timeout=30, deadline=30)
    slow = []
    try:
        for _ in range(SLOW):         # each starts a request and then says nothing more (for now)
            s = socket.create_connection(("127.0.0.1", _port(server)), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            slow.append(s)
        wait_until(lambda: server.evicted + server.refused >= SLOW - rest_server.MAX_READING_PER_CLIENT, 20,
                   what="the server to have taken every slow connection")
        answers = []
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=10)
            try:
                conn.request("GET", "/healthz")
                answers.append(conn.getresponse().status)
            except (OSError, http.client.HTTPException) as exc:
                answers.append(type(exc).__name__)
            finally:
                conn.close()
        assert answers == [200] * 20, answers           # before: every slot held, every request failed
    finally:
        for s in slow:
            s.close()
        server.shutdown()
        server.server_close()


def test_a_request_trickling_in_is_cut_at_its_deadline():
    server = rest_server.serve_in_thread(("127.0.0.1", 0), make_app(Service()), idle_timeout=5, deadline=1)
    try:
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as s:
            request = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
            sent = 0
            closed = False
            for byte in request:            # one byte every 0.1 s: 12 s for the whole request
                try:
                    s.sendall(bytes([byte]))
                    sent += 1
                except OSError:
                    closed = True
                    break
                s.settimeout(0.1)
                try:
                    data = s.recv(4096)
                    closed = True           # an answer (408/400) or the end: the server gave up on it
                    break
                except socket.timeout:
                    pass
            # before: the idle timeout restarted with every byte, the whole request was taken
            assert closed and sent < len(request), (sent, len(request))
    finally:
        server.shutdown()
        server.server_close()


# ---- the lab's relay ------------------------------------------------------------------------------------

class _Echo(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo():
    server = _Echo(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _relay(echo_port, **kw):
    from minet_sdn.lab.relay import Relay
    relay = Relay(None, "127.0.0.1", echo_port, **kw)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    return relay


def _roundtrip(port) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"ping")
        return s.recv(16)


def test_the_relay_closes_idle_connections(echo):
    relay = _relay(echo, idle=0.3)
    try:
        assert _roundtrip(relay.listen_port) == b"ping"
        with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=10) as s:
            assert s.recv(16) == b""             # before: held forever (2 fds and a thread each)
    finally:
        relay.close()


def test_the_relay_caps_its_connections(echo):
    relay = _relay(echo, idle=30, max_clients=10, root_reserve=0)
    held = []
    try:
        for _ in range(10):
            held.append(socket.create_connection(("127.0.0.1", relay.listen_port), timeout=10))
            held[-1].sendall(b"x")
            assert held[-1].recv(1) == b"x"
        with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=10) as extra:
            assert extra.recv(16) == b""          # closed at once
        assert relay.refused == 1
        for s in held:
            s.close()
        wait_until(lambda: relay.slots._value == 10, 10, what="the held slots to be given back")
        assert _roundtrip(relay.listen_port) == b"ping"
    finally:
        for s in held:
            s.close()
        relay.close()


def test_the_relay_survives_running_out_of_fds_in_accept(echo):
    """A relay limited to 48 fds, 70 idle connections: accept fails with EMFILE (before: uncaught,
    the relay died); once they are gone it relays again."""
    code = ("import sys\nfrom minet_sdn.lab.relay import Relay\n"
            f"r = Relay(None, '127.0.0.1', {echo}, idle=3, max_clients=1000)\n"
            "print(r.listen_port, flush=True)\nr.serve_forever()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)),
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    held = []
    try:
        port = int(proc.stdout.readline())
        for _ in range(70):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(0.5)                          # deliberately: the relay meets EMFILE meanwhile
        assert proc.poll() is None, proc.stderr.read()
        for s in held:
            s.close()
        held.clear()
        assert wait_until(lambda: _try_roundtrip(port), 30, what="the relay to relay again") is not False
        assert proc.poll() is None
    finally:
        for s in held:
            s.close()
        proc.kill()
        proc.wait()


def _try_roundtrip(port) -> bool:
    try:
        return _roundtrip(port) == b"ping"
    except OSError:
        return False


# ---- the relay tells local users apart (issue 21, item 2's open door) ------------------------------------

def test_the_relay_reads_who_connected_from_the_kernels_socket_table():
    from minet_sdn.lab.relay import peer_uid, uid_of
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "   0: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 1 1\n"
             "   1: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n")
    assert uid_of(table, ("127.0.0.1", 0xA2C4), ("127.0.0.1", 8080)) == 1001
    assert uid_of(table, ("127.0.0.1", 8080), ("127.0.0.1", 0xA2C4)) == 0
    assert uid_of(table, ("127.0.0.1", 1), ("127.0.0.1", 8080)) is None
    with socket.socket() as srv:                   # and a real connection: ours
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname(), timeout=5):
            conn, _ = srv.accept()
            with conn:
                assert peer_uid(conn) == os.getuid()


def test_no_local_user_can_take_roots_room_or_anothers():
    """Before: 128 slots for everyone, so one local user holding them closed root's CLI at once."""
    from minet_sdn.lab.relay import Relay
    relay = Relay(None, "127.0.0.1", 9, max_clients=40, per_user=16, root_reserve=8)
    try:
        assert all(relay._take(1001) for _ in range(16))
        assert not relay._take(1001)                       # its own budget is spent...
        assert all(relay._take(1002) for _ in range(16))   # ...not another user's
        assert not relay._take(1003)                       # users together stop at 40 - 8
        assert all(relay._take(0) for _ in range(8))       # root's reserve is there
        assert not relay._take(0)                          # and the total holds
        relay._give(1001)
        assert relay._take(0) and not relay._take(1004)
    finally:
        relay.close()


def test_each_user_reaches_the_controller_from_an_address_of_its_own():
    from minet_sdn.lab.relay import Relay, source_address
    assert source_address(0) != source_address(1000) != source_address(1001) != source_address(-1)
    seen = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def accept():
        conn, addr = srv.accept()
        seen.append(addr[0])
        conn.close()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    relay = Relay(None, "127.0.0.1", srv.getsockname()[1])
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=5) as c:
            c.settimeout(5)
            assert c.recv(1) == b""                        # the far side closed after noting us
        t.join(5)
        assert seen == [source_address(os.getuid())]       # before: every user came from one address
    finally:
        relay.close()
        srv.close()
