"""Issue 12, the OpenFlow door: what the controller lets os-ken parse, how it serves connections,
and what happens when its listener fails. No sockets of the network: fakes and the app harness.
(The real listener, on loopback: tests/unit/test_controller_listener*.py.)
"""
import errno
import struct
import threading
import types

import pytest

from minet_sdn import compat
from minet_sdn.apps import guard, remote_links
from minet_sdn.compat import handler
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core.ofcheck import PARSE, SKIP, BadMessage, check

from tests.unit.app_harness import Lab, two_servers

remote_links.install()       # what the controller does when it starts: these tests exercise it

TOPOLOGY = two_servers("guard", """\
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
  - {a: 1.A, b: 2.B, rel: customer}
""")


def frame(msg_type, body=b"", version=4, xid=0):
    return struct.pack("!BBHI", version, msg_type, 8 + len(body), xid) + body


# ---- what may reach os-ken's parser ---------------------------------------------------------------

def test_the_issues_zero_length_hello_elements_are_refused():
    for raw in ("04000010000000130001000000000010", "04000010000000130007000000000010"):
        with pytest.raises(BadMessage, match="HELLO element of length 0"):
            check(bytes.fromhex(raw), handshake=True)


def test_hellos_a_switch_may_send_pass():
    assert check(frame(0), handshake=True) == PARSE                                   # no element
    assert check(frame(0, struct.pack("!HHI", 1, 8, 1 << 4)), handshake=True) == PARSE
    padded = frame(0, struct.pack("!HHII4x", 1, 12, 1 << 4, 0) + struct.pack("!HHI", 9, 8, 0))
    assert check(padded, handshake=True) == PARSE
    assert check(frame(0, struct.pack("!HHI", 1, 8, 1 << 6), version=6), handshake=True) == PARSE
    with pytest.raises(BadMessage, match="overruns"):
        check(frame(0, struct.pack("!HHI", 1, 64, 1 << 4)), handshake=True)
    with pytest.raises(BadMessage, match="at most"):
        check(frame(0, b"\0\x01\0\x08" * 300), handshake=True)


def test_before_the_hello_only_a_hello_and_afterwards_only_the_agreed_version():
    with pytest.raises(BadMessage, match="before the HELLO"):
        check(frame(2), handshake=True)
    with pytest.raises(BadMessage, match="version 0x01"):
        check(frame(2, version=1), handshake=False)
    assert check(frame(2, b"x"), handshake=False) == PARSE
    assert check(frame(0), handshake=False) == SKIP            # a second HELLO: ignored, not parsed


def test_header_lengths_that_lie_are_refused():
    with pytest.raises(BadMessage, match="shorter than the header"):
        check(struct.pack("!BBHI", 4, 2, 0, 0), handshake=False)
    with pytest.raises(BadMessage, match="but 12 bytes"):
        check(struct.pack("!BBHI", 4, 2, 8, 0) + b"abcd", handshake=False)


def test_messages_a_controller_has_no_use_for_are_skipped_unparsed():
    for msg_type in (4, 8, 11, 14, 23, 25, 27, 200):
        assert check(frame(msg_type, b"\0" * 40), handshake=False) == SKIP
    for mp_type in (3, 6, 7, 12, 0xffff):
        assert check(frame(19, struct.pack("!HH4x", mp_type, 0) + b"\0" * 8), handshake=False) == SKIP


def test_an_aggregate_reply_the_audit_reads_must_have_its_size():
    assert check(frame(19, struct.pack("!HH4x", 2, 0) + b"\0" * 24), handshake=False) != SKIP
    with pytest.raises(BadMessage, match="AGGREGATE reply"):
        check(frame(19, struct.pack("!HH4x", 2, 0) + b"\0" * 8), handshake=False)


def test_fixed_size_messages_must_have_their_size():
    with pytest.raises(BadMessage, match="PORT_STATUS of 72 bytes"):
        check(frame(12, b"\0" * 64), handshake=False)
    with pytest.raises(BadMessage, match="FEATURES_REPLY"):
        check(frame(6, b"\0" * 16), handshake=False)
    with pytest.raises(BadMessage, match="multiple of 64"):
        check(frame(19, struct.pack("!HH4x", 13, 0) + b"\0" * 60), handshake=False)


def _flow_entry(instructions: bytes, match: bytes = struct.pack("!HH4x", 1, 4)) -> bytes:
    length = 48 + len(match) + len(instructions)
    return struct.pack("!HBxIIHHHH4xQQQ", length, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + match + instructions


def _flow_reply(*entries: bytes) -> bytes:
    return frame(19, struct.pack("!HH4x", 1, 0) + b"".join(entries))


def test_flow_stats_lengths_are_walked_to_the_last_action():
    output = struct.pack("!HHIH6x", 0, 16, 1, 0)
    apply = struct.pack("!HH4x", 4, 8 + len(output)) + output
    assert check(_flow_reply(_flow_entry(apply), _flow_entry(b"")), handshake=False) == PARSE
    bad = {
        "entry of length 0": _flow_reply(_flow_entry(apply)[:0] + struct.pack("!H", 0) + _flow_entry(apply)[2:]),
        "instruction of length 0": _flow_reply(_flow_entry(struct.pack("!HH4x", 4, 0))),
        "action of length 0": _flow_reply(_flow_entry(struct.pack("!HH4x", 4, 16) + struct.pack("!HH4x", 0, 0))),
        # an output action os-ken reads as 16 bytes whatever it says: the rest would be read as actions
        "action type 0 of length 24": _flow_reply(_flow_entry(struct.pack("!HH4x", 4, 32)
                                                              + struct.pack("!HHIH6x", 0, 24, 1, 0) + b"\0" * 8)),
        "match length 0": _flow_reply(_flow_entry(b"", match=struct.pack("!HH4x", 1, 0))),
        "OXM field of length 0": _flow_reply(_flow_entry(b"", match=struct.pack("!HHHBB", 1, 8, 0x8000, 0, 0))),
        "instruction type 99": _flow_reply(_flow_entry(struct.pack("!HH4x", 99, 8))),
    }
    for what, raw in bad.items():
        with pytest.raises(BadMessage):
            check(raw, handshake=False)


def test_flow_entries_left_to_the_wire_decoder_are_still_walked_before_os_ken_parses_them():
    """The listener frames flow-stats entries only (flow_entries=False); an entry the wire decoder
    does not know is walked by ofcheck before os-ken sees it, so a bad one still drops the
    connection (BadMessage) instead of looping os-ken; a good unknown one is parsed by os-ken."""
    from minet_sdn.compat import ofproto_v1_3 as ofp
    import importlib
    from minet_sdn.core import wire
    ofproto_parser = importlib.import_module(f"{compat.FRAMEWORK}.ofproto.ofproto_parser")
    wire.install_flow_stats_decoder()
    bad = _flow_reply(_flow_entry(struct.pack("!HH4x", 4, 16) + struct.pack("!HH4x", 0, 0)))   # action of length 0
    assert check(bad, handshake=False, flow_entries=False) == PARSE            # framing is fine
    with pytest.raises(BadMessage):
        check(bad, handshake=False)                                            # the full walk refuses it
    with pytest.raises(BadMessage, match="action of length 0"):
        ofproto_parser.msg(types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser), 4, 19, len(bad), 1, bad)
    framing = _flow_reply(struct.pack("!H", 20) + _flow_entry(b"")[2:])       # entry length 20 < 56
    with pytest.raises(BadMessage, match="length 20"):
        check(framing, handshake=False, flow_entries=False)
    # goto-table: not in the wire decoder's vocabulary, legal for os-ken
    good = _flow_reply(_flow_entry(struct.pack("!HHB3x", 1, 8, 1)))
    msg = ofproto_parser.msg(types.SimpleNamespace(ofproto=ofp, ofproto_parser=parser), 4, 19, len(good), 1, good)
    assert [type(i).__name__ for i in msg.body[0].instructions] == ["OFPInstructionGotoTable"]


def test_what_the_harness_switches_send_passes_the_check(tmp_path, monkeypatch):
    """Every message the fake switches send the app (stats with NX register moves as Open vSwitch
    reports them, port status, packet-ins, errors) is one the check lets through."""
    seen = []
    original = Lab._event

    def checked(self, dp, raw):
        assert check(bytes(raw), handshake=False) == PARSE, raw.hex()
        seen.append(raw[1])
        return original(self, dp, raw)

    monkeypatch.setattr(Lab, "_event", checked)
    lab = Lab(tmp_path, TOPOLOGY)
    lab.carrier("VM1", 1, False)
    lab.carrier("VM1", 1, True)
    lab.error(lab.topo.dpid("VM1", "VM2"), 1, 2, b"\0" * 8)
    lab.get_json("/v1/links")
    assert {19, 12, 1} <= set(seen)
    assert lab.problems(ignore=("error",)) == []


def test_the_patched_hello_parser_steps_over_padding():
    raw = frame(0, struct.pack("!HHII4x", 1, 12, 1 << 4, 1 << 1) + struct.pack("!HHI", 9, 8, 0))
    dispatch = parser._MSG_PARSERS[0]           # what os-ken's message parser really calls
    msg = dispatch(None, 4, 0, len(raw), 0, bytearray(raw))
    assert [e.versions for e in msg.elements] == [[4, 33]]


def test_nx_actions_other_than_ours_stay_opaque():
    learn = struct.pack("!HHIH", 0xffff, 24, 0x2320, 16) + b"\0" * 14
    action = parser.OFPAction.parser(bytearray(learn), 0)
    assert type(action).__name__ == "NXActionUnknown" and action.subtype == 16
    move = parser.NXActionRegMove(src_field="eth_src", dst_field="eth_dst", n_bits=48)
    buf = bytearray()
    move.serialize(buf, 0)
    assert isinstance(parser.OFPAction.parser(buf, 0), parser.NXActionRegMove)


# ---- the listener ---------------------------------------------------------------------------------

class FakeServerSocket:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)

    def getsockname(self):
        return ("127.0.0.1", 6653)

    def accept(self):
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome, ("127.0.0.1", 40000)


class FakeConn:
    closed = False

    def close(self):
        self.closed = True


@pytest.fixture
def listener(monkeypatch):
    fresh = guard.Listener()
    monkeypatch.setattr(guard, "LISTENER", fresh)
    return fresh


def _serve(outcomes, handle=lambda sock, addr: None, spawn=None, monkeypatch=None):
    hub = compat.hub
    if spawn is not None:
        monkeypatch.setattr(hub, "spawn", spawn)
    server = types.SimpleNamespace(server=FakeServerSocket(outcomes), handle=handle)
    with pytest.raises(OSError):
        hub.StreamServer.serve_forever(server)


def test_accept_errors_are_retried_and_a_dead_listener_is_told(listener, monkeypatch):
    told = []
    listener.watch(lambda l: told.append(l.error))
    conns = [FakeConn(), FakeConn()]
    _serve([OSError(errno.EMFILE, "Too many open files"), conns[0], OSError(errno.ENFILE, "table full"),
            conns[1], OSError(errno.EBADF, "Bad file descriptor")],
           spawn=lambda fn, *a: types.SimpleNamespace(), monkeypatch=monkeypatch)
    assert listener.accept_errors == 2
    assert listener.state == "dead" and told == ["OSError: [Errno 9] Bad file descriptor"]


def test_a_thread_that_cannot_start_costs_one_connection_not_the_listener(listener, monkeypatch):
    conns = [FakeConn(), FakeConn()]
    started = []

    def spawn(fn, sock, addr):
        if sock is conns[0]:
            raise RuntimeError("can't start new thread")
        started.append(sock)

    _serve([conns[0], conns[1], OSError(errno.EBADF, "gone")], spawn=spawn, monkeypatch=monkeypatch)
    assert conns[0].closed and started == [conns[1]] and listener.accept_errors == 1


def test_connections_beyond_the_limits_are_refused(listener, monkeypatch):
    monkeypatch.setattr(guard.CONNECTIONS, "counts", lambda: (5, 5))
    monkeypatch.setitem(guard.CONNECTION_LIMITS, "handshaking", 5)
    conn = FakeConn()
    _serve([conn, OSError(errno.EBADF, "gone")], spawn=lambda *a: pytest.fail("spawned"), monkeypatch=monkeypatch)
    assert conn.closed and listener.refused == 1


def test_health_says_when_the_listener_is_dead_and_the_process_is_told_to_stop(tmp_path, listener, monkeypatch):
    lab = Lab(tmp_path, TOPOLOGY)
    fatal = threading.Event()
    monkeypatch.setitem(remote_links.CONFIG, "on_fatal", lambda reason: fatal.set())
    listener.watch(lab.app._listener_died)
    code, _, body = lab.wsgi("GET", "/healthz")
    assert code == 200
    listener.died(OSError(errno.EBADF, "Bad file descriptor"))
    code, _, body = lab.wsgi("GET", "/healthz")
    assert code == 503
    assert b'"status": "error"' in body and b"Bad file descriptor" in body
    assert fatal.wait(5)


# ---- liveness -------------------------------------------------------------------------------------

class FakeDp:
    def __init__(self, state, accepted, heard):
        self.state, self.minet_accepted, self.minet_heard = state, accepted, heard
        self.id, self.address = 0x1234, ("127.0.0.1", 1)
        self.sent, self.shut = [], False
        self.send_q = object()
        self.ofproto_parser = parser
        self.socket = types.SimpleNamespace(shutdown=lambda how: setattr(self, "shut", True))

    def send_msg(self, msg):
        self.sent.append(msg)


def test_sweep_drops_stuck_handshakes_pings_quiet_switches_and_drops_silent_ones(monkeypatch):
    conns = guard.Connections()
    conns.echo_interval = 1.0
    h = handler
    stuck = FakeDp(h.HANDSHAKE_DISPATCHER, accepted=0.0, heard=0.0)
    fresh = FakeDp(h.CONFIG_DISPATCHER, accepted=99.0, heard=99.0)
    quiet = FakeDp(h.MAIN_DISPATCHER, accepted=0.0, heard=98.5)
    silent = FakeDp(h.MAIN_DISPATCHER, accepted=0.0, heard=96.0)
    talking = FakeDp(h.MAIN_DISPATCHER, accepted=0.0, heard=99.9)
    for dp in (stuck, fresh, quiet, silent, talking):
        conns.add(dp)
    conns.sweep(100.0)
    assert stuck.shut and not fresh.shut
    assert [type(m).__name__ for m in quiet.sent] == ["OFPEchoRequest"] and not quiet.shut
    assert silent.shut and not talking.shut and not talking.sent
    conns.sweep(100.2)
    assert len(quiet.sent) == 1                       # one echo per interval, not one per sweep
    assert conns.dropped["handshake_timeout"] == 1 and conns.dropped["silent"] == 1


def test_the_hardening_is_installed_by_the_shell_not_by_an_import():
    """Importing compat or the app changes nothing in os-ken; install() (made app, `minet
    controller`) patches the parser, Datapath.serve and the listener loop. In a fresh interpreter."""
    import subprocess
    import sys
    code = ("import importlib\n"
            "import minet_sdn.compat, minet_sdn.apps.remote_links as app\n"
            "from minet_sdn.apps import guard\n"
            "p = importlib.import_module(minet_sdn.compat.FRAMEWORK + '.ofproto.ofproto_parser')\n"
            "c = importlib.import_module(minet_sdn.compat.FRAMEWORK + '.controller.controller')\n"
            "print(guard.installed(), hasattr(p.msg, 'minet_original'), c.Datapath.serve.__module__)\n"
            "app.install()\n"
            "print(guard.installed(), hasattr(p.msg, 'minet_original'), c.Datapath.serve.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after = out.stdout.split("\n")[:2]
    assert before.startswith("False False ") and not before.endswith("guard")
    assert after == "True True minet_sdn.apps.guard"
