"""OpenFlow 1.3 on the wire for the messages a sync is made of, with struct instead of os-ken objects.

Building an os-ken OFPFlowMod (OFPMatch normalises every field) and serialising it costs ~70 us a
flow, and parsing a flow-stats entry ~75 us: seconds of a 10,000-link sync. Our flows use a handful
of fields and actions, so:
  * FlowMods are encoded from Flow values into exactly the bytes os-ken would produce (a unit test
    checks every flow of both isolation modes), once per flow per process (`flow_mod_bytes`);
    `PackedFlowMod` is still an OFPFlowMod for code that looks at `.match` or `.instructions`;
  * `Packer` writes a sync's messages in ~64 KiB chunks, every run of FlowMods inside one ONF
    bundle (atomic on the switch);
  * flow-stats replies are decoded straight into Flow values (`WireFlowStats`), falling back to
    os-ken's parser for anything outside our vocabulary.
os-ken keeps everything else: connections, handshakes, every other message.
"""
from __future__ import annotations

import gc
import socket
import threading
import struct
from functools import lru_cache

import importlib

from ..compat import FRAMEWORK
from ..compat import ofproto_v1_3 as ofp
from ..compat import ofproto_v1_3_parser as parser
from . import ofcheck
from .flows import IN_PORT, Action, Flow
from .ofconv import flow_from_stats, instructions

_os_ken_exception = importlib.import_module(f"{FRAMEWORK}.exception")

# OXM (OpenFlow basic class) field numbers and value encodings of every field our flows use
_OXM = {"in_port": (0, "!I"), "eth_dst": (3, "mac"), "eth_src": (4, "mac"), "eth_type": (5, "!H"),
        "ip_dscp": (8, "!B"), "arp_op": (21, "!H"), "arp_spa": (22, "ip"), "arp_tpa": (23, "ip"),
        "arp_sha": (24, "mac"), "arp_tha": (25, "mac"), "tunnel_id": (38, "!Q")}
_OXM_CLASS = 0x8000
_FLOW_MOD_BODY = struct.Struct("!QQBBHHHIIIH2x")
_HEADER = struct.Struct("!BBHI")


def _oxm(name: str, value) -> bytes:
    field, kind = _OXM[name]
    if kind == "mac":
        v = bytes.fromhex(value.replace(":", ""))
    elif kind == "ip":
        v = socket.inet_aton(value)
    else:
        v = struct.pack(kind, value)
    return struct.pack("!I", (_OXM_CLASS << 16) | (field << 9) | len(v)) + v


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


@lru_cache(maxsize=None)
def _move(src: str, dst: str, n_bits: int) -> bytes:
    buf = bytearray()                 # a Nicira extension: rare enough to let os-ken encode it once
    parser.NXActionRegMove(src_field=src, dst_field=dst, n_bits=n_bits).serialize(buf, 0)
    return bytes(buf)


def _action(a: Action) -> bytes:
    kind = a[0]
    if kind == "output":
        port = ofp.OFPP_IN_PORT if a[1] == IN_PORT else a[1]
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, port, ofp.OFPCML_MAX)
    if kind == "set_field":
        body = _pad8(b"\0\0\0\0" + _oxm(a[1], a[2]))
        return struct.pack("!HH", ofp.OFPAT_SET_FIELD, len(body)) + body[4:]
    if kind == "move":
        return _move(a[1], a[2], a[3])
    raise ValueError(f"unknown action {a!r}")


def _match(flow: Flow) -> bytes:
    oxms = b"".join(_oxm(k, v) for k, v in sorted(flow.match, key=lambda kv: _OXM[kv[0]][0]))
    return _pad8(struct.pack("!HH", ofp.OFPMT_OXM, 4 + len(oxms)) + oxms)


def encode_flow_mod(flow: Flow, command: int, xid: int) -> bytes:
    """OFPT_FLOW_MOD for `flow`: ADD (with its actions) or DELETE_STRICT (any cookie)."""
    if command == ofp.OFPFC_ADD:
        acts = b"".join(_action(a) for a in flow.actions)
        inst = struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts if acts else b""
        head = _FLOW_MOD_BODY.pack(flow.cookie, 0, flow.table_id, command, 0, 0, flow.priority,
                                   ofp.OFP_NO_BUFFER, 0, 0, 0)
    elif command == ofp.OFPFC_DELETE_STRICT:
        inst = b""
        head = _FLOW_MOD_BODY.pack(0, 0, flow.table_id, command, 0, 0, flow.priority,
                                   ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY, 0)
    else:
        raise ValueError(f"unsupported FlowMod command {command}")
    body = head + _match(flow) + inst
    return _HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, 8 + len(body), xid) + body


class PackedFlowMod(parser.OFPFlowMod):
    """An OFPFlowMod made from a Flow value and serialised by `encode_flow_mod`. Only the flow and
    the command are stored (a sync makes tens of thousands): every other field of an OFPFlowMod
    is derived from them when read."""

    version = msg_type = msg_len = buf = None
    idle_timeout = hard_timeout = flags = cookie_mask = 0
    buffer_id = ofp.OFP_NO_BUFFER

    def __init__(self, flow: Flow, command: int, datapath=None):   # not OFPFlowMod's: no OFPMatch
        self.flow = flow
        self.command = command
        self.datapath = datapath
        self.xid = None

    @property
    def _delete(self) -> bool:
        return self.command == ofp.OFPFC_DELETE_STRICT

    cookie = property(lambda self: 0 if self._delete else self.flow.cookie)
    table_id = property(lambda self: self.flow.table_id)
    priority = property(lambda self: self.flow.priority)
    out_port = property(lambda self: ofp.OFPP_ANY if self._delete else 0)
    out_group = property(lambda self: ofp.OFPG_ANY if self._delete else 0)

    @property
    def match(self):
        return parser.OFPMatch(**dict(self.flow.match))

    @property
    def instructions(self):
        if self._delete:
            return []
        return instructions(self.flow.actions)

    def serialize(self):
        self.version = ofp.OFP_VERSION
        self.msg_type = ofp.OFPT_FLOW_MOD
        self.buf = encode_flow_mod(self.flow, self.command, self.xid or 0)
        self.msg_len = len(self.buf)


# ---- sending: packed writes, bundles ----------------------------------------------------------
#
# A sync's messages are written back to back in ~64 KiB chunks (one queue hand-over and one
# syscall per chunk instead of per message). Runs of FlowMods go inside one OpenFlow bundle (the
# ONF extension of OpenFlow 1.3 that Open vSwitch implements, what `ovs-ofctl --bundle` uses):
# OPEN, every FlowMod wrapped in a BUNDLE_ADD, COMMIT. The switch applies the whole run at commit,
# atomically, or, if any of it is refused, none of it: a switch never runs half a table. Other
# messages (PortMods, the barrier) keep their place after the commit.

ONF_EXPERIMENTER = 0x4F4E4600
_ONF_CTRL = struct.Struct("!BBHIIIIHH")        # header, experimenter, exp_type, bundle id, type, flags
_ONF_ADD = struct.Struct("!BBHIIIIHH")         # header, experimenter, exp_type, bundle id, pad, flags
BUNDLE_FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
_XID = struct.Struct("!I")

# FlowMod bytes (xid 0) by (flow, command): a flow is encoded once per controller process. The
# flows derived at load (core/flows.py prepare) are also found by identity (a Flow is a tuple whose
# hash walks all its fields; the memo holds the flow, so its id cannot be reused meanwhile).
_ENCODED: dict = {}
_ADD_BY_ID: dict = {}
_MAX_ENCODED = 1 << 20


def flow_mod_bytes(flow: Flow, command: int) -> bytes:
    if command == ofp.OFPFC_ADD:
        got = _ADD_BY_ID.get(id(flow))
        if got is not None and got[0] is flow:
            return got[1]
    key = (flow, command)
    raw = _ENCODED.get(key)
    if raw is None:
        if len(_ENCODED) >= _MAX_ENCODED:
            _ENCODED.clear()
            _ADD_BY_ID.clear()
        raw = _ENCODED[key] = encode_flow_mod(flow, command, 0)
    if command == ofp.OFPFC_ADD and len(_ADD_BY_ID) < _MAX_ENCODED:
        _ADD_BY_ID[id(flow)] = (flow, raw)
    return raw


def bundle_ctrl(bundle_id: int, ctrl_type: int, xid: int, flags: int = BUNDLE_FLAGS) -> bytes:
    return _ONF_CTRL.pack(ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER, 24, xid, ONF_EXPERIMENTER,
                          ofp.ONF_ET_BUNDLE_CONTROL, bundle_id, ctrl_type, flags)


def bundle_add(bundle_id: int, xid: int, inner: bytes, flags: int = BUNDLE_FLAGS) -> bytes:
    """A BUNDLE_ADD carrying `inner` (a whole message whose xid is this message's xid)."""
    return _ONF_ADD.pack(ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER, 24 + len(inner), xid, ONF_EXPERIMENTER,
                         ofp.ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, 0, flags) + inner


class Packer:
    """Turns the messages the core returned for one switch into ~64 KiB writes. xids count on
    from `xid` (the connection's last one; `self.xid` is the last used after pack())."""

    def __init__(self, xid: int, next_bundle_id, chunk: int = 64 * 1024):
        self.xid, self.next_bundle_id, self.chunk = xid, next_bundle_id, chunk
        self.bundles = []          # (bundle id, commit xid, FlowMods) of the last pack()

    def pack(self, msgs, other) -> list:
        """Chunks of bytes for `msgs`; `other(msg, xid)` serialises a message that is not a
        FlowMod with that xid and gives its bytes. Runs of two or more FlowMods are bundled."""
        return list(self.stream(msgs, other))

    def stream(self, msgs, other):
        """pack(), one chunk at a time as soon as it is full: the switch parses the first ones
        while the rest are packed. `self.xid` and `self.bundles` are final once it is exhausted."""
        buf = bytearray()
        self.bundles = []
        i, n = 0, len(msgs)
        while i < n:
            j = i
            while j < n and type(msgs[j]) is PackedFlowMod:
                j += 1
            if j - i >= 2:
                yield from self._bundle(msgs, i, j, buf)
                i = j
            else:
                msg = msgs[i]
                self.xid = xid = (self.xid + 1) & 0xFFFFFFFF
                if type(msg) is PackedFlowMod:
                    msg.xid = xid
                    raw = flow_mod_bytes(msg.flow, msg.command)
                    buf += raw[:4]
                    buf += _XID.pack(xid)
                    buf += raw[8:]
                else:
                    buf += other(msg, xid)
                i += 1
            if len(buf) >= self.chunk:
                yield bytes(buf)
                del buf[:]
        if buf:
            yield bytes(buf)

    def _bundle(self, msgs, i: int, j: int, buf: bytearray):
        bid, flags, xid = self.next_bundle_id(), BUNDLE_FLAGS, self.xid
        xid = (xid + 1) & 0xFFFFFFFF
        buf += bundle_ctrl(bid, ofp.ONF_BCT_OPEN_REQUEST, xid)
        head = _ONF_ADD.pack(ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER, 0, 0, ONF_EXPERIMENTER,
                             ofp.ONF_ET_BUNDLE_ADD_MESSAGE, bid, 0, flags)
        pack_into, chunk, encoded = struct.pack_into, self.chunk, flow_mod_bytes
        for k in range(i, j):
            msg = msgs[k]
            xid = (xid + 1) & 0xFFFFFFFF
            msg.xid = xid
            raw = encoded(msg.flow, msg.command)
            at = len(buf)
            buf += head
            buf += raw
            pack_into("!HI", buf, at + 2, 24 + len(raw), xid)
            pack_into("!I", buf, at + 28, xid)
            if len(buf) >= chunk:
                yield bytes(buf)
                del buf[:]
        xid = (xid + 1) & 0xFFFFFFFF
        buf += bundle_ctrl(bid, ofp.ONF_BCT_COMMIT_REQUEST, xid)
        self.bundles.append((bid, xid, j - i))
        self.xid = xid


# ---- decoding flow-stats replies -------------------------------------------------------------
#
# A no-op resync reads every flow of a bridge back (30,002 at 10,000 links); os-ken's parser builds
# an OFPMatch, instruction and action objects per entry (~75 us), which made a reconnect 10x slower
# than `ovs-ofctl --bundle replace-flows`. `WireFlowStats.parser` decodes the entries our flows can
# produce straight into Flow values, equal to what `ofconv.flow_from_stats` makes of os-ken's parse
# (tested on every flow of both isolation modes, as the fake switch and as Open vSwitch encode
# them); any entry outside that vocabulary (masks, other instructions or actions, unknown fields)
# is handed to os-ken's parser and `flow_from_stats`, so the result never depends on which path ran.

_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQHH")     # ofp_flow_stats up to the match's type and length
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TLV = struct.Struct("!HH")
_MOVE = struct.Struct("!IHHHHII")                    # experimenter, subtype, n_bits, src_ofs, dst_ofs, src, dst
_NX_VENDOR, _NX_REG_MOVE = 0x2320, 6


def _mac_text(raw) -> str:
    return bytes(raw).hex(":")


def _ip_text(raw) -> str:
    return socket.inet_ntoa(bytes(raw))


def _int(raw) -> int:
    return int.from_bytes(raw, "big")


_DECODE = {"mac": _mac_text, "ip": _ip_text}


def _oxm_headers():
    """Full 32-bit OXM header (class, field, no mask, length) -> (field name, value decoder)."""
    out = {}
    for name, (field, kind) in _OXM.items():
        size = {"mac": 6, "ip": 4}.get(kind) or struct.calcsize(kind)
        out[(_OXM_CLASS << 16) | (field << 9) | size] = (name, _DECODE.get(kind, _int))
    return out


def _move_headers():
    """The header a register move carries for each field we move, in OXM or (as Open vSwitch
    reports them) NXM encoding -> the field's OXM name; taken from os-ken's own encoding."""
    out = {}
    for name in ("eth_src", "eth_dst", "arp_sha", "arp_tha", "arp_spa", "arp_tpa"):
        for user in (name, name + "_nxm"):
            buf = bytearray()
            parser.NXActionRegMove(src_field=user, dst_field=user, n_bits=1).serialize(buf, 0)
            out[_U32.unpack_from(buf, 16)[0]] = name
    return out


_OXM_HEADERS = _oxm_headers()
_MOVE_HEADERS = _move_headers()


class _Unknown(Exception):
    """An entry the fast decoder does not cover: os-ken parses it instead."""


def _decode_entry(buf, offset: int, length: int, mlen: int) -> tuple:
    """(match pairs sorted, actions) of the entry at `offset`; raises _Unknown outside our vocabulary."""
    heads = _OXM_HEADERS
    match = []
    pos, end = offset + 52, offset + 48 + mlen
    while pos < end:
        h = _U32.unpack_from(buf, pos)[0]
        n = h & 0xFF
        spec = heads.get(h)
        if spec is None:
            raise _Unknown
        match.append((spec[0], spec[1](buf[pos + 4:pos + 4 + n])))
        pos += 4 + n
    if pos != end:
        raise _Unknown
    match.sort()
    actions = []
    pos, end = offset + 48 + ((mlen + 7) & ~7), offset + length
    while pos < end:
        itype, ilen = _TLV.unpack_from(buf, pos)
        if itype != ofp.OFPIT_APPLY_ACTIONS or ilen < 8 or pos + ilen > end:
            raise _Unknown
        a, iend = pos + 8, pos + ilen
        while a < iend:
            atype, alen = _TLV.unpack_from(buf, a)
            if alen < 8 or a + alen > iend:
                raise _Unknown
            if atype == ofp.OFPAT_OUTPUT:
                port = _U32.unpack_from(buf, a + 4)[0]
                actions.append(("output", IN_PORT if port == ofp.OFPP_IN_PORT else port))
            elif atype == ofp.OFPAT_SET_FIELD:
                h = _U32.unpack_from(buf, a + 4)[0]
                spec = heads.get(h)
                if spec is None or 8 + (h & 0xFF) > alen:
                    raise _Unknown
                actions.append(("set_field", spec[0], spec[1](buf[a + 8:a + 8 + (h & 0xFF)])))
            elif atype == ofp.OFPAT_EXPERIMENTER and alen == 24:
                vendor, subtype, n_bits, src_ofs, dst_ofs, src, dst = _MOVE.unpack_from(buf, a + 4)
                src, dst = _MOVE_HEADERS.get(src), _MOVE_HEADERS.get(dst)
                if vendor != _NX_VENDOR or subtype != _NX_REG_MOVE or src_ofs or dst_ofs or not src or not dst:
                    raise _Unknown
                actions.append(("move", src, dst, n_bits))
            else:
                raise _Unknown
            a += alen
        pos = iend
    return tuple(match), tuple(actions)



# Our flows come in a handful of shapes (3 per link, 2 per bridge), so the entries of a reply repeat
# a few layouts with only the values changing. The first entry of a layout is decoded field by
# field (_decode_entry) and compiled into one struct that unpacks the whole entry, a check of every
# structural value (OXM headers, lengths, action types) and a builder of the Flow's tuples; later
# entries of that (length, match length, first OXM header) go through it: one unpack instead of
# a Python loop per field. A layout that fails its check falls back to the field-by-field path.
_TEMPLATES: dict = {}
_MAX_TEMPLATES = 256          # a switch sending garbage cannot grow this without bound


def _layout(buf, offset: int, length: int, mlen: int):
    """The entry's layout: struct format (from offset 52), structural (index, value) pairs and the
    source of the expressions building the match pairs (sorted by name) and the actions."""
    fmt, checks, match, actions = [], [], [], []
    count = [0]                      # values unpacked so far (pad bytes "Nx" yield none)

    def item(code, value=None, check=False):
        fmt.append(code)
        i = count[0]
        count[0] += 1
        if check:
            checks.append((i, value))
        return i

    pos, end = offset + 52, offset + 48 + mlen
    while pos < end:
        h = _U32.unpack_from(buf, pos)[0]
        name, kind = _OXM_HEADERS[h][0], _OXM[_OXM_HEADERS[h][0]][1]
        item("I", h, True)
        i = item({"mac": "6s", "ip": "4s"}.get(kind, kind.lstrip("!")))
        match.append((name, f"({name!r}, {_conv(kind, i)})"))
        pos += 4 + (h & 0xFF)
    pad = ((mlen + 7) & ~7) - mlen
    if pad:
        fmt.append(f"{pad}x")
    pos, end = offset + 48 + ((mlen + 7) & ~7), offset + length
    while pos < end:
        itype, ilen = _TLV.unpack_from(buf, pos)
        item("H", itype, True)
        item("H", ilen, True)
        fmt.append("4x")
        a, iend = pos + 8, pos + ilen
        while a < iend:
            atype, alen = _TLV.unpack_from(buf, a)
            item("H", atype, True)
            item("H", alen, True)
            if atype == ofp.OFPAT_OUTPUT:
                i = item("I")
                fmt.append("8x")
                actions.append(f"('output', IN_PORT if v[{i}] == {ofp.OFPP_IN_PORT} else v[{i}])")
            elif atype == ofp.OFPAT_SET_FIELD:
                h = _U32.unpack_from(buf, a + 4)[0]
                name = _OXM_HEADERS[h][0]
                kind = _OXM[name][1]
                item("I", h, True)
                i = item({"mac": "6s", "ip": "4s"}.get(kind, kind.lstrip("!")))
                rest = alen - 8 - (h & 0xFF)
                if rest:
                    fmt.append(f"{rest}x")
                actions.append(f"('set_field', {name!r}, {_conv(kind, i)})")
            else:                                   # a register move, as _decode_entry checked
                vals = _MOVE.unpack_from(buf, a + 4)
                for code, value in zip("IHHHHII", vals):
                    item(code, value, True)
                actions.append(repr(("move", _MOVE_HEADERS[vals[5]], _MOVE_HEADERS[vals[6]], vals[2])))
            a += alen
        pos = iend
    match.sort()
    return "!" + "".join(fmt), checks, [m[1] for m in match], actions


def _conv(kind: str, i: int) -> str:
    if kind == "mac":
        return f"v[{i}].hex(':')"
    if kind == "ip":
        return f"inet_ntoa(v[{i}])"
    return f"v[{i}]"


def _compile(buf, offset: int, length: int, mlen: int):
    fmt, checks, match, actions = _layout(buf, offset, length, mlen)
    unpack = struct.Struct(fmt).unpack_from
    if struct.calcsize(fmt) != length - 52:
        return None
    idx = ", ".join(f"v[{i}]" for i, _ in checks)
    src = (f"def decode(buf, pos):\n"
           f"    v = unpack(buf, pos)\n"
           f"    if ({idx}{',' if idx else ''}) != EXPECTED:\n"
           f"        return None\n"
           f"    return ({''.join(m + ', ' for m in match)}), ({''.join(a + ', ' for a in actions)})\n")
    scope = {"unpack": unpack, "EXPECTED": tuple(v for _, v in checks), "IN_PORT": IN_PORT,
             "inet_ntoa": socket.inet_ntoa}
    exec(compile(src, "<minet_sdn.core.wire template>", "exec"), scope)   # our own generated source
    return scope["decode"]


def _flow_stats_body(buf, msg_len: int, offset: int) -> list:
    """Every entry of a flow-stats reply from `offset` on, as WireFlowStats. The cyclic GC is
    paused meanwhile: tens of thousands of new objects that all stay alive would otherwise trigger
    collections over the growing heap again and again."""
    was = gc.isenabled()
    gc.disable()
    try:
        body = []
        while offset < msg_len:
            entry = _entry(buf, offset, msg_len)
            body.append(entry)
            offset += entry.length
        return body
    finally:
        if was:
            gc.enable()


def _entry(buf, offset: int, limit: int) -> "WireFlowStats":
    (length, table_id, _, _, priority, _, _, _, cookie, packets, octets, mtype,
     mlen) = _FLOW_STATS.unpack_from(buf, offset)
    if length < 56:                  # header + empty match: a shorter entry would loop os-ken forever
        raise struct.error(f"flow stats entry of {length} bytes at offset {offset}")
    if offset + length > limit:
        raise struct.error(f"flow stats entry of {length} bytes at offset {offset} overruns its message")
    entry = WireFlowStats.__new__(WireFlowStats)
    entry.length, entry.cookie, entry.packet_count, entry.byte_count = length, cookie, packets, octets
    entry._buf, entry._offset, entry._parsed = buf, offset, None
    decoded = None
    if mtype == ofp.OFPMT_OXM and 4 <= mlen and 48 + ((mlen + 7) & ~7) <= length:
        shape = (length, mlen, _U32.unpack_from(buf, offset + 52)[0] if mlen >= 8 else 0)
        decode = _TEMPLATES.get(shape)
        if decode is not None:
            decoded = decode(buf, offset + 52)
        if decoded is None:
            try:
                decoded = _decode_entry(buf, offset, length, mlen)
            except (_Unknown, struct.error, ValueError, OSError):
                pass
            else:
                if decode is None and len(_TEMPLATES) < _MAX_TEMPLATES:
                    _TEMPLATES[shape] = _compile(buf, offset, length, mlen) or _never
    if decoded is None:
        # outside our own vocabulary: os-ken parses it, once ofcheck has walked every length in it
        # (the listener's pre-parse check only framed the entries; see ofcheck.check)
        try:
            ofcheck.flow_stats_entry(buf, offset, offset + length, f"flow stats entry at offset {offset}")
        except ofcheck.BadMessage as exc:
            raise BadFlowEntry(str(exc)) from None
        entry.flow = flow_from_stats(entry._os_ken())
    else:
        entry.flow = Flow(priority, decoded[0], decoded[1], cookie, table_id)
    return entry


class BadFlowEntry(ofcheck.BadMessage, _os_ken_exception.OFPTruncatedMessage):
    """A flow-stats entry that fails ofcheck's walk. Also os-ken's OFPTruncatedMessage, the one
    error its message parser lets through (it logs and drops every other), so the listener sees a
    BadMessage and drops the connection, as when its own pre-parse check refuses a message."""

    def __init__(self, text: str):
        Exception.__init__(self, text)
        self.ofpmsg, self.residue, self.original_exception, self.kwargs = None, b"", None, {}


_batch = threading.local()     # os-ken runs one receive thread per switch


class WireFlowStats:
    """One ofp_flow_stats entry decoded with struct: `flow`, the entry as a Flow value (equal to
    `ofconv.flow_from_stats` of os-ken's parse), its counters, and every other attribute of
    os-ken's OFPFlowStats (parsed by os-ken from the entry's bytes only when asked for)."""

    __slots__ = ("length", "cookie", "packet_count", "byte_count", "flow", "_buf", "_offset", "_parsed")
    # every entry it hands os-ken is walked by ofcheck.flow_stats_entry first (see ofcheck.check)
    minet_checks_entries = True

    @classmethod
    def parser(cls, buf, offset: int) -> "WireFlowStats":
        """os-ken's OFPMultipartReply.parser calls this for every entry in turn, offset 16 first:
        the first call decodes the whole message at once (GC paused), the next ones hand out its
        entries; any other call pattern decodes the one entry asked for."""
        if offset == ofp.OFP_MULTIPART_REPLY_SIZE:
            entries = _flow_stats_body(buf, len(buf), offset)
            _batch.buf, _batch.entries = buf, {e._offset: e for e in entries}
            return _batch.entries.pop(offset)
        if getattr(_batch, "buf", None) is buf:
            entry = _batch.entries.pop(offset, None)
            if not _batch.entries:
                _batch.buf = _batch.entries = None
            if entry is not None:
                return entry
        return _entry(buf, offset, len(buf))

    def _os_ken(self):
        if self._parsed is None:
            self._parsed = parser.OFPFlowStats.parser(bytes(self._buf[self._offset:self._offset + self.length]), 0)
        return self._parsed

    @property
    def table_id(self) -> int:
        return self.flow.table_id

    @property
    def priority(self) -> int:
        return self.flow.priority

    def __getattr__(self, name):     # match, instructions, duration_sec, flags, ...: os-ken's parse
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._os_ken(), name)

    def __repr__(self) -> str:
        return f"WireFlowStats({self.flow!r}, packets={self.packet_count}, bytes={self.byte_count})"


def install_flow_stats_decoder() -> None:
    """Make os-ken decode OFPMP_FLOW reply entries with WireFlowStats (everything else about the
    message, and every other message, stays os-ken's). Idempotent; the app calls it on import."""
    parser.OFPFlowStatsReply.cls_stats_body_cls = WireFlowStats


def _never(buf, pos):
    return None
