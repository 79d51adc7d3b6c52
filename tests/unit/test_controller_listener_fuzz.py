"""Fuzz the real OpenFlow listener: random and mutated messages of every type from a connected switch.

One `minet controller` process on loopback (tests/unit/listener_support.py). For every
OpenFlow 1.3 message type (and every multipart reply type) there is a plausible message; each is
sent as is and with every 16-bit window of it (header length included) set to 0 and to 0xffff, which
puts every length field at 0 and at its maximum, then bit-flipped and random variants. After each
message the fuzzer sends an ECHO_REQUEST: the controller must either answer it (the message was
taken or skipped) or close the connection (it was refused). Neither means its receive thread is
stuck, and the test names the message. Every so often, and at the end: the process is up, REST
answers, threads and memory stay bounded; at the end a real switch still syncs.

Bounded by count (a fixed seed; a few thousand messages), not by time.
"""
import random
import socket
import struct

from tests.polling import wait_until
from tests.unit.listener_support import (Controller, bridge_switch, frame, hello, OFPT_ECHO_REPLY,
                                         OFPT_ECHO_REQUEST, OFPT_FEATURES_REQUEST, OFPT_MULTIPART_REQUEST)

SEED = 12
RANDOM_MESSAGES = 4000
CHECK_EVERY = 500
MAX_EXTRA_THREADS = 12
MAX_EXTRA_RSS_KIB = 150 * 1024


# ---- plausible messages of every type ---------------------------------------------------------

def oxm(field: int, value: bytes, cls: int = 0x8000) -> bytes:
    return struct.pack("!HBB", cls, field << 1, len(value)) + value


def match(*fields: bytes) -> bytes:
    body = b"".join(fields)
    m = struct.pack("!HH", 1, 4 + len(body)) + body
    return m + b"\0" * (-len(m) % 8)


def action_output(port: int) -> bytes:
    return struct.pack("!HHIH6x", 0, 16, port, 0xffff)


def action_set_field(field: bytes) -> bytes:
    a = struct.pack("!HH", 25, 0) + field
    a += b"\0" * (-len(a) % 8)
    return a[:2] + struct.pack("!H", len(a)) + a[4:]


def nx_action(subtype: int, body: bytes) -> bytes:
    a = struct.pack("!HHIH", 0xffff, 0, 0x2320, subtype) + body
    a += b"\0" * (-len(a) % 8)
    return a[:2] + struct.pack("!H", len(a)) + a[4:]


REG_MOVE = nx_action(6, struct.pack("!HHHII", 48, 0, 0, 0x80000806, 0x80000606))
CT = nx_action(35, struct.pack("!HIHBxxxH", 1, 0, 0, 255, 0) + action_output(1))
LEARN = nx_action(16, struct.pack("!HHHQHBxHH", 10, 0, 100, 0, 0, 1, 0, 0) + struct.pack("!HI", 0x2010, 0x00000406) + b"\0" * 4)
CONTROLLER2 = nx_action(37, b"\0" * 6 + struct.pack("!HHH", 0, 6, 128))


def instruction_actions(*actions: bytes, itype: int = 4) -> bytes:
    body = b"".join(actions)
    return struct.pack("!HH4x", itype, 8 + len(body)) + body


def flow_stats_entry(m: bytes, instructions: bytes) -> bytes:
    length = 48 + len(m) + len(instructions)
    return (struct.pack("!HBxIIHHHH4xQQQ", length, 0, 1, 2, 100, 0, 0, 0, 0x6d6e000000000001, 5, 500)
            + m + instructions)


def port(port_no: int) -> bytes:
    return struct.pack("!I4x6s2x16sIIIIIIII", port_no, b"\x0a\0\0\0\0\x01", b"p%d" % port_no, 0, 4, 0, 0, 0, 0, 0, 0)


def multipart_reply(mp_type: int, body: bytes) -> bytes:
    return frame(19, struct.pack("!HH4x", mp_type, 0) + body)


PACKET = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\0" * 28
MATCH = match(oxm(0, struct.pack("!I", 101)), oxm(38, struct.pack("!Q", 7)))
FLOW_INSTRUCTIONS = (instruction_actions(action_set_field(oxm(38, struct.pack("!Q", 1))), action_output(1),
                                         REG_MOVE, CT, LEARN, CONTROLLER2)
                     + struct.pack("!HHB3x", 1, 8, 1)                        # goto table
                     + struct.pack("!HH4xQQ", 2, 24, 1, 0xff)                # write metadata
                     + instruction_actions(action_output(2), itype=3)
                     + struct.pack("!HH4x", 5, 8))                           # clear actions
BUCKET = struct.pack("!HHII4x", 16 + 16, 1, 0xffffffff, 0xffffffff) + action_output(1)
METER_BAND = struct.pack("!HHII4x", 1, 16, 1000, 10)

BASES = {
    "hello": hello(),
    "hello-2-elements": frame(0, struct.pack("!HHII4x", 1, 12, 1 << 4, 0) + struct.pack("!HHI", 9, 8, 0)),
    "error": frame(1, struct.pack("!HH", 4, 1) + frame(14, b"\0" * 40)),
    "error-hello-failed": frame(1, struct.pack("!HH", 0, 0) + b"not ascii \xff"),
    "error-experimenter": frame(1, struct.pack("!HHI", 0xffff, 1, 0x2320) + b"data"),
    "echo-request": frame(2, b"ping"),
    "echo-reply": frame(3, b"pong"),
    "experimenter": frame(4, struct.pack("!II", 0x2320, 30) + struct.pack("!HH", 0, 8) + b"abcd"),
    "features-reply": frame(6, struct.pack("!QIBB2xII", 0x6d6e000000000001, 0, 254, 0, 0, 0)),
    "get-config-reply": frame(8, struct.pack("!HH", 0, 0xffe5)),
    "packet-in": frame(10, struct.pack("!IHBBQ", 0xffffffff, len(PACKET), 1, 0, 0) + MATCH + b"\0\0" + PACKET),
    "flow-removed": frame(11, struct.pack("!QHBBIIHHQQ", 1, 100, 0, 0, 1, 0, 0, 0, 1, 1) + MATCH),
    "port-status": frame(12, struct.pack("!B7x", 2) + port(101)),
    "mp-desc": multipart_reply(0, b"m" * 256 + b"h" * 256 + b"s" * 256 + b"n" * 32 + b"d" * 256),
    "mp-flow": multipart_reply(1, flow_stats_entry(MATCH, FLOW_INSTRUCTIONS) + flow_stats_entry(match(), b"")),
    "mp-aggregate": multipart_reply(2, struct.pack("!QQI4x", 1, 2, 3)),
    "mp-table": multipart_reply(3, struct.pack("!B3xIQQ", 0, 1, 2, 3)),
    "mp-port-stats": multipart_reply(4, struct.pack("!I4x" + "Q" * 12 + "II", 1, *range(12), 1, 2)),
    "mp-queue": multipart_reply(5, struct.pack("!IIQQQII", 1, 1, 1, 1, 1, 1, 1)),
    "mp-group": multipart_reply(6, struct.pack("!H2xII4xQQII", 40 + 16, 1, 1, 1, 1, 1, 1) + struct.pack("!QQ", 1, 1)),
    "mp-group-desc": multipart_reply(7, struct.pack("!HBxI", 8 + len(BUCKET), 0, 1) + BUCKET),
    "mp-group-features": multipart_reply(8, struct.pack("!II4I4I", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)),
    "mp-meter": multipart_reply(9, struct.pack("!IH6xIQQII", 1, 40 + 16, 1, 1, 1, 1, 1) + struct.pack("!QQ", 1, 1)),
    "mp-meter-config": multipart_reply(10, struct.pack("!HHI", 8 + 16, 1, 1) + METER_BAND),
    "mp-meter-features": multipart_reply(11, struct.pack("!IIIBB2x", 1, 1, 1, 1, 1)),
    "mp-table-features": multipart_reply(12, struct.pack("!HB5x32sQQII", 64 + 8, 0, b"t", 0, 0, 0, 1)
                                         + struct.pack("!HHI", 0, 8, 0)),
    "mp-port-desc": multipart_reply(13, port(1) + port(101)),
    "mp-experimenter": multipart_reply(0xffff, struct.pack("!II", 0x2320, 1) + b"x" * 8),
    "barrier-reply": frame(21, b""),
    "queue-get-config-reply": frame(23, struct.pack("!I4x", 1) + struct.pack("!IIH6x", 1, 1, 16 + 16)
                                    + struct.pack("!HH4xH6x", 1, 16, 100)),
    "role-reply": frame(25, struct.pack("!I4xQ", 2, 1)),
    "get-async-reply": frame(27, struct.pack("!IIIIII", 1, 1, 1, 1, 1, 1)),
}
for t in (5, 7, 9, 13, 14, 15, 16, 17, 18, 20, 22, 24, 26, 28, 29, 30, 200):  # controller-to-switch and unknown
    BASES[f"type-{t}"] = frame(t, bytes(range(40)))


def with_length(msg: bytes) -> bytes:
    return msg[:2] + struct.pack("!H", len(msg)) + msg[4:]


MUTATE_FIRST = {"mp-desc": 24}        # its body is four fixed-size strings: nothing to measure there


def mutations(msg: bytes, limit: int = 1 << 16):
    """Every 16-bit-aligned window at 0 and at 0xffff: every length field of the message (the
    header's, and the 16- and 8-bit ones inside, which all sit in such a window) at 0 and at its
    maximum."""
    for offset in range(0, min(len(msg), limit) - 1, 2):
        for value in (b"\0\0", b"\xff\xff"):
            mutated = msg[:offset] + value + msg[offset + 2:]
            if offset >= 4:
                mutated = with_length(mutated)
            yield f"[{offset}]={value.hex()}", mutated


# ---- a connection that reports what became of each message -------------------------------------

class Probe:
    """A switch connection in MAIN_DISPATCHER (or before), sending one message at a time."""

    def __init__(self, ctl: Controller, dpid: int, state: str):
        self.sock = socket.create_connection(("127.0.0.1", ctl.ofp_port), timeout=10)
        self.buf = b""
        self.xid = 1000
        if state == "handshake":
            return
        self.sock.sendall(hello())
        self._until(OFPT_FEATURES_REQUEST)
        if state == "config":
            return
        self.sock.sendall(frame(6, struct.pack("!QIBB2xII", dpid, 0, 254, 0, 0, 0), self.last_xid))
        self._until(OFPT_MULTIPART_REQUEST)                      # os-ken's port list, in CONFIG
        self.sock.sendall(frame(19, struct.pack("!HH4x", 13, 0) + port(1) + port(101), self.last_xid))

    def _read(self):
        while len(self.buf) < 8 or len(self.buf) < struct.unpack_from("!H", self.buf, 2)[0]:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        length = struct.unpack_from("!H", self.buf, 2)[0]
        msg, self.buf = self.buf[:length], self.buf[length:]
        return msg[1], struct.unpack_from("!I", msg, 4)[0], msg

    def _until(self, msg_type: int):
        while True:
            t, xid, _ = self._read()
            if t == msg_type:
                self.last_xid = xid
                return

    def send(self, msg: bytes) -> str:
        """'alive' (an echo sent after it came back) or 'dropped' (the controller closed)."""
        self.xid += 1
        declared = struct.unpack_from("!H", msg, 2)[0]
        if declared >= 8:       # exactly the bytes the header announces, so the echo after it is read as one
            msg = msg[:declared] + b"\0" * (declared - len(msg))
        try:
            self.sock.sendall(msg + frame(OFPT_ECHO_REQUEST, b"probe", self.xid))
            while True:
                t, xid, body = self._read()
                if t == OFPT_ECHO_REPLY and xid == self.xid:
                    return "alive"
                if t == OFPT_ECHO_REQUEST:                       # liveness check from the controller
                    self.sock.sendall(frame(OFPT_ECHO_REPLY, body[8:], xid))
        except (EOFError, ConnectionError):
            return "dropped"
        except socket.timeout:
            raise AssertionError("the controller neither answered nor closed: its receive thread is stuck")

    def close(self):
        self.sock.close()


def cases(rng: random.Random):
    """(connection state, name, bytes) of every message the fuzzer sends, in order."""
    for name, msg in BASES.items():
        yield "main", name, msg
        for label, mutated in mutations(msg, MUTATE_FIRST.get(name, 1 << 16)):
            yield "main", f"{name}{label}", mutated
    for name in ("hello", "hello-2-elements"):
        for label, mutated in mutations(BASES[name]):
            yield rng.choice(["handshake", "config"]), f"{name}{label}", mutated
    names = sorted(BASES)
    for i in range(RANDOM_MESSAGES):
        name = rng.choice(names)
        msg = bytearray(BASES[name])
        kind = rng.choice(["flip", "flip", "random-body", "truncate"])
        if kind == "flip":
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(msg))
                msg[pos] ^= 1 << rng.randrange(8)
        elif kind == "random-body":
            msg[8:] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
        else:
            del msg[rng.randint(8, len(msg)):]
        msg = with_length(bytes(msg)) if rng.random() < 0.8 else bytes(msg)
        yield rng.choice(["main", "main", "main", "config", "handshake"]), f"{name}~{kind}{i}", msg


# ---- the test ---------------------------------------------------------------------------------

def test_fuzzed_openflow_messages_leave_the_controller_up_and_bounded(tmp_path):
    ctl = Controller(tmp_path, env={"MINET_OFP_HANDSHAKE_TIMEOUT": "2"})
    rng = random.Random(SEED)
    from minet_sdn.topology import load_topology
    dpids = sorted(load_topology(str(ctl.topology)).bridges)
    stats = {"alive": 0, "dropped": 0}
    sent = 0
    try:
        base_threads, base_rss = ctl.threads(), ctl.rss_kib()

        def check(where: str):
            assert ctl.alive(), f"the controller died ({where}): {ctl.stderr.read_text()[-2000:]}"
            status, _ = ctl.request("GET", "/healthz")
            assert status == 200, (where, status)
            wait_until(lambda: ctl.threads() <= base_threads + MAX_EXTRA_THREADS, 10,
                       what=f"threads {ctl.threads()} to come back near {base_threads} ({where})")
            assert ctl.rss_kib() <= base_rss + MAX_EXTRA_RSS_KIB, (where, ctl.rss_kib(), base_rss)

        probe, probe_state = None, None
        for state, name, msg in cases(rng):
            if probe is None or probe_state != state or state != "main":
                if probe is not None:
                    probe.close()
                probe, probe_state = Probe(ctl, dpids[sent % len(dpids)], state), state
            try:
                verdict = probe.send(msg)
            except AssertionError as exc:
                raise AssertionError(f"{name} ({state}): {msg.hex()}: {exc}") from None
            stats[verdict] += 1
            if verdict == "dropped":
                probe.close()
                probe = None
            sent += 1
            if sent % CHECK_EVERY == 0:
                check(f"after {sent} messages, last {name}")
        if probe is not None:
            probe.close()
        check(f"after all {sent} messages")
        wait_until(lambda: ctl.threads() <= base_threads + 2, 20,
                   what=f"threads back to {base_threads} once every fuzzing connection is closed")
        sw = bridge_switch(ctl, "VM1", "VM2").start()
        try:
            wait_until(lambda: ctl.get_json("/healthz")["synced"] >= 1, 10, what="a real switch to sync after the fuzzing")
        finally:
            sw.close()
        status, _ = ctl.request("GET", "/v1/links")
        assert status == 200
        # the fuzzer really exercised both outcomes
        assert stats["alive"] > 100 and stats["dropped"] > 100, stats
        print(f"fuzz: {sent} messages, {stats}, threads {base_threads} -> {ctl.threads()}, "
              f"rss {base_rss} -> {ctl.rss_kib()} KiB")
    finally:
        ctl.stop()
