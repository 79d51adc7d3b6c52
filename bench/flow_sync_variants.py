"""Bench-only prototypes of product changes that would speed up a sync, measured end to end.

Not product code: bench/flow_sync.py --variants runs each of these as the controller (same bench
app as the real path, see flow_sync_app.py, plus the change below), against the same OvS, and
checks that the table it leaves is identical to the one ovs-ofctl leaves. Pick one with
$MNBENCH_VARIANT:

  batched            the app's send path only: a sync's messages serialised back to back and
                     written in ~64 KiB chunks, one Datapath.send() per chunk instead of one per
                     message (os-ken's 16-slot send queue hands every message to its send thread)
  gc                 nothing but Python's cyclic garbage collector tuned at controller start:
                     gc.freeze() after the topology is loaded, gc.set_threshold(700, 10, 1000).
                     A sync allocates ~15 tracked objects per flow (os-ken messages, matches,
                     actions, parsed flow stats) and the default thresholds run a full collection
                     over all of them again and again while they pile up
  gc+batched+match   both, and FlowMods built with OFPMatch(_ordered_fields=...) in OXM order,
                     skipping os-ken's keyword normalise/from_user/to_user round trip: the most
                     one can get while keeping os-ken message objects
  encoded            FlowMods encoded straight to bytes from the Flow values (struct, ~60 lines;
                     byte-identical to os-ken's encoding, checked by verify()), batched
  encoded+bundle     and wrapped in one OpenFlow bundle (ONF extension for OpenFlow 1.3, what
                     `ovs-ofctl --bundle` uses): OvS applies the whole set at commit, atomically

`python3 bench/flow_sync_variants.py [N]` (no root, no OvS) prints the CPU cost of every step
of a sync, current code vs these prototypes, including a struct decoder for the flow-stats read
that dominates a no-op resync.
"""
from __future__ import annotations

import gc
import os
import socket
import struct
from functools import lru_cache
from typing import Iterable, List

from minet_sdn.core import ofmsg
from minet_sdn.core.flows import IN_PORT, Flow

from bench.flow_sync_app import BenchRemoteLinks

ofp = ofmsg.ofp
parser = ofmsg.parser

VARIANTS = ("batched", "gc", "gc+batched+match", "encoded", "encoded+bundle")
NOOP_VARIANTS = ("gc", "gc+batched+match")     # the others leave the no-op resync path unchanged
GC_THRESHOLD = (700, 10, 1000)
CHUNK = 64 * 1024

# OXM (OpenFlow basic class) field numbers and value encodings of every field our flows use
_OXM = {"in_port": (0, "!I"), "eth_dst": (3, "mac"), "eth_src": (4, "mac"), "eth_type": (5, "!H"),
        "ip_dscp": (8, "!B"), "arp_op": (21, "!H"), "arp_spa": (22, "ip"), "arp_tpa": (23, "ip"),
        "arp_sha": (24, "mac"), "arp_tha": (25, "mac"), "tunnel_id": (38, "!Q")}


def _oxm_value(kind: str, value) -> bytes:
    if kind == "mac":
        return bytes.fromhex(value.replace(":", ""))
    if kind == "ip":
        return socket.inet_aton(value)
    return struct.pack(kind, value)


def _oxm(name: str, value) -> bytes:
    field, kind = _OXM[name]
    v = _oxm_value(kind, value)
    return struct.pack("!I", (0x8000 << 16) | (field << 9) | len(v)) + v


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


@lru_cache(maxsize=None)
def _move(src: str, dst: str, n_bits: int) -> bytes:
    buf = bytearray()
    parser.NXActionRegMove(src_field=src, dst_field=dst, n_bits=n_bits).serialize(buf, 0)
    return bytes(buf)


def _action(a) -> bytes:
    kind = a[0]
    if kind == "output":
        port = ofp.OFPP_IN_PORT if a[1] == IN_PORT else a[1]
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, port, ofp.OFPCML_MAX)
    if kind == "set_field":
        tlv = _oxm(a[1], a[2])
        body = _pad8(struct.pack("!HH", ofp.OFPAT_SET_FIELD, 0) + tlv)
        return struct.pack("!HH", ofp.OFPAT_SET_FIELD, len(body)) + body[4:]
    if kind == "move":
        return _move(a[1], a[2], a[3])
    raise ValueError(a)


def encode_flow_add(flow: Flow, xid: int = 0) -> bytes:
    """The OFPT_FLOW_MOD (ADD) os-ken would send for `flow`, as bytes."""
    fields = sorted(flow.match, key=lambda kv: _OXM[kv[0]][0])
    oxms = b"".join(_oxm(k, v) for k, v in fields)
    match = _pad8(struct.pack("!HH", ofp.OFPMT_OXM, 4 + len(oxms)) + oxms)
    inst = b""
    if flow.actions:
        acts = b"".join(_action(a) for a in flow.actions)
        inst = struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts
    body = struct.pack("!QQBBHHHIIIH2x", flow.cookie, 0, flow.table_id, ofp.OFPFC_ADD, 0, 0, flow.priority,
                       ofp.OFP_NO_BUFFER, 0, 0, 0) + match + inst
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, 8 + len(body), xid) + body


def fast_flow_add(flow: Flow):
    """ofmsg.flow_add, with the match given in OXM order so os-ken skips its normalisation."""
    fields = sorted(flow.match, key=lambda kv: _OXM[kv[0]][0])
    return parser.OFPFlowMod(None, cookie=flow.cookie, table_id=flow.table_id, command=ofp.OFPFC_ADD,
                             priority=flow.priority, match=parser.OFPMatch(_ordered_fields=fields),
                             instructions=ofmsg.instructions(flow.actions))


def verify(flows: Iterable[Flow]) -> int:
    """Both prototypes encode exactly what ofmsg.flow_add + os-ken serialise would; returns #checked."""
    class _Dp:
        ofproto, ofproto_parser = ofp, parser
    n = 0
    for flow in flows:
        for build in (ofmsg.flow_add, fast_flow_add):
            msg = build(flow)
            msg.datapath = _Dp()
            msg.set_xid(7)
            msg.serialize()
            if bytes(msg.buf) != encode_flow_add(flow, 7):
                raise AssertionError(f"encoding differs for {flow}")
        if n == 0:
            flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
            inner = ofmsg.flow_add(flow)
            inner.datapath = _Dp()
            add = parser.ONFBundleAddMsg(_Dp(), 3, flags, inner, [])
            add.set_xid(7)
            add.serialize()
            if bytes(add.buf) != bundle_add(3, flags, 7, encode_flow_add(flow, 7)):
                raise AssertionError("bundle add encoding differs")
        n += 1
    return n


def bundle_add(bundle_id: int, flags: int, xid: int, inner: bytes) -> bytes:
    """ONF bundle add message (OpenFlow 1.3 experimenter) carrying `inner` (same xid)."""
    return struct.pack("!BBHIIIIHH", ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER, 24 + len(inner), xid,
                       0x4F4E4600, ofp.ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, 0, flags) + inner


class Encoded:
    """A pre-encoded message: the core's _add returns these in the `encoded` variants."""
    __slots__ = ("flow",)

    def __init__(self, flow: Flow):
        self.flow = flow


class VariantRemoteLinks(BenchRemoteLinks):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.variant = os.environ.get("MNBENCH_VARIANT", "batched")
        if self.variant not in VARIANTS:
            raise ValueError(f"MNBENCH_VARIANT={self.variant!r}: one of {VARIANTS}")
        parts = set(self.variant.split("+"))
        self.batched = bool(parts & {"batched", "encoded"})
        self.bundle = "bundle" in parts
        if "gc" in parts:
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLD)
        core = self.core
        if "match" in parts:
            def _add(flow):
                core.counters["flow_add"] += 1
                return fast_flow_add(flow)
            core._add = _add
        elif "encoded" in parts:
            def _add(flow):
                core.counters["flow_add"] += 1
                return Encoded(flow)
            core._add = _add
        self._bundle_id = 0

    def _send(self, out) -> None:
        if not self.batched:
            return super()._send(out)
        for dpid, msgs in out.items():
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            chunk: List[bytes] = []
            size = 0
            if self.bundle and any(isinstance(m, Encoded) for m in msgs):
                msgs = self._bundled(dp, msgs)
            for msg in msgs:
                buf = self._encode(dp, msg)
                chunk.append(buf)
                size += len(buf)
                if size >= CHUNK:
                    dp.send(b"".join(chunk))
                    chunk, size = [], 0
            if chunk:
                dp.send(b"".join(chunk))

    def _bundled(self, dp, msgs) -> list:
        self._bundle_id += 1
        bid, flags = self._bundle_id, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        inner = [m for m in msgs if isinstance(m, Encoded)]
        rest = [m for m in msgs if not isinstance(m, Encoded)]    # PortMods, barrier: after commit
        return ([parser.ONFBundleCtrlMsg(None, bid, ofp.ONF_BCT_OPEN_REQUEST, flags, [])]
                + [("bundle", bid, flags, m) for m in inner]
                + [parser.ONFBundleCtrlMsg(None, bid, ofp.ONF_BCT_COMMIT_REQUEST, flags, [])] + rest)

    def _encode(self, dp, msg) -> bytes:
        if isinstance(msg, Encoded):
            xid = dp.set_xid(_XID)
            buf = encode_flow_add(msg.flow, xid)
            self._bench_note(dp, "FlowMod", xid)
            return buf
        if isinstance(msg, tuple):                                 # a FlowMod inside the bundle
            _, bid, flags, m = msg
            xid = dp.set_xid(_XID)
            inner = encode_flow_add(m.flow, xid)
            self._bench_note(dp, "FlowMod", xid)
            return bundle_add(bid, flags, xid, inner)
        msg.datapath = dp
        if msg.xid is None:
            dp.set_xid(msg)
        msg.serialize()
        self._bench_note(dp, ofmsg.kind(msg) or "msg", msg.xid)
        return bytes(msg.buf)


class _XidSink:
    """dp.set_xid() wants a message; this one only takes the number."""
    @staticmethod
    def set_xid(xid):
        pass


_XID = _XidSink()


# ---- offline CPU cost of each step (no OvS, no root): python3 bench/flow_sync_variants.py [N] --------

_NAMES = {f: name for name, (f, _) in _OXM.items()}
_KINDS = {name: kind for name, (_, kind) in _OXM.items()}
# Open vSwitch answers flow stats with the NXM encoding of a move's fields (class 0 / 1)
_NXM_HEADERS = {(0x0000, 2): "eth_dst", (0x0000, 3): "eth_src", (0x0000, 16): "arp_spa",
                (0x0000, 17): "arp_tpa", (0x0001, 17): "arp_sha", (0x0001, 18): "arp_tha"}


def _oxm_decode(name: str, raw: bytes):
    kind = _KINDS[name]
    if kind == "mac":
        return ":".join(f"{b:02x}" for b in raw)
    if kind == "ip":
        return socket.inet_ntoa(raw)
    return int.from_bytes(raw, "big")


def _header_name(h: int) -> str:
    cls, field = h >> 16, (h >> 9) & 0x7F
    return _NAMES[field] if cls == 0x8000 else _NXM_HEADERS[(cls, field)]


def decode_flow_stats(buf: bytes, offset: int = 0):
    """One ofp_flow_stats entry -> (Flow as ofmsg.flow_from_stats builds it, entry length)."""
    length, table_id, priority, cookie = (struct.unpack_from("!HB", buf, offset) + struct.unpack_from("!H", buf, offset + 12)
                                          + struct.unpack_from("!Q", buf, offset + 24))[0:4]
    mlen = struct.unpack_from("!H", buf, offset + 50)[0]
    pos, end = offset + 52, offset + 48 + mlen
    match = []
    while pos < end:
        h = struct.unpack_from("!I", buf, pos)[0]
        n = h & 0xFF
        name = _header_name(h)
        match.append((name, _oxm_decode(name, buf[pos + 4:pos + 4 + n])))
        pos += 4 + n
    pos = offset + 48 + ((mlen + 7) // 8) * 8
    actions = []
    while pos < offset + length:
        itype, ilen = struct.unpack_from("!HH", buf, pos)
        if itype != ofp.OFPIT_APPLY_ACTIONS:
            actions.append(("unknown", bytes(buf[pos:pos + ilen])))
        a, iend = pos + 8, pos + ilen
        while itype == ofp.OFPIT_APPLY_ACTIONS and a < iend:
            atype, alen = struct.unpack_from("!HH", buf, a)
            if atype == ofp.OFPAT_OUTPUT:
                port = struct.unpack_from("!I", buf, a + 4)[0]
                actions.append(("output", IN_PORT if port == ofp.OFPP_IN_PORT else port))
            elif atype == ofp.OFPAT_SET_FIELD:
                h = struct.unpack_from("!I", buf, a + 4)[0]
                name = _header_name(h)
                actions.append(("set_field", name, _oxm_decode(name, buf[a + 8:a + 8 + (h & 0xFF)])))
            elif atype == 0xFFFF and struct.unpack_from("!IH", buf, a + 4) == (0x2320, 6):
                n_bits, src_ofs, dst_ofs, src, dst = struct.unpack_from("!HHHII", buf, a + 10)
                if src_ofs or dst_ofs:
                    actions.append(("unknown", bytes(buf[a:a + alen])))
                else:
                    actions.append(("move", _header_name(src), _header_name(dst), n_bits))
            else:
                actions.append(("unknown", bytes(buf[a:a + alen])))
            a += alen
        pos = iend
    return Flow(priority=priority, match=tuple(sorted(match)), actions=tuple(actions), cookie=cookie,
                table_id=table_id), length


def flow_stats_entry(flow: Flow) -> bytes:
    """The ofp_flow_stats entry a switch would return for `flow` (counters zero)."""
    mod = encode_flow_add(flow)
    body = mod[48:]                                   # match + instructions, as in the FlowMod
    return struct.pack("!HBxIIHHHH4xQQQ", 48 + len(body), flow.table_id, 1, 0, flow.priority, 0, 0, 0,
                       flow.cookie, 0, 0) + body


def micro(n_links: int = 10000) -> dict:
    """CPU seconds (best of 3) of each step of a sync of `n_links` key-mode links, current vs prototype."""
    import tempfile
    import time
    from pathlib import Path
    from minet_sdn.core.flows import bridge_flows
    from minet_sdn.topology import load_topology
    from bench.flow_sync import topology_yaml

    with tempfile.TemporaryDirectory(prefix="mnbench-micro-") as d:
        path = Path(d) / "topo.yaml"
        path.write_text(topology_yaml(n_links))
        topo = load_topology(str(path))
    bridge = topo.bridge("VM1", "VM2")
    out = {}

    def cpu(label, fn, runs=3):
        best = None
        for _ in range(runs):          # best of 3 (the first call also pays for os-ken's lazy set-up)
            t = time.process_time()
            r = fn()
            took = time.process_time() - t
            best = took if best is None else min(best, took)
        out[label] = round(best, 3)
        return r

    class _Dp:
        ofproto, ofproto_parser = ofp, parser
        xid = 0

        def set_xid(self, m):
            self.xid += 1
            m.set_xid(self.xid)
    dp = _Dp()

    def serialise(msgs):
        for m in msgs:
            m.datapath, m.xid = dp, None
            dp.set_xid(m)
            m.serialize()
        return b"".join(m.buf for m in msgs)

    gc.collect()
    flows = cpu("bridge_flows", lambda: list(bridge_flows(topo, bridge, [topo.link(lid).ofport
                                                                       for lid in bridge.link_ids]).values()))
    out["flows"] = len(flows)
    msgs = cpu("build: ofmsg.flow_add (current)", lambda: [ofmsg.flow_add(f) for f in flows])
    cpu("serialise: os-ken MsgBase.serialize (current)", lambda: serialise(msgs))
    msgs2 = cpu("build: OFPMatch(_ordered_fields)", lambda: [fast_flow_add(f) for f in flows])
    cpu("serialise: os-ken, ordered-match messages", lambda: serialise(msgs2))
    cpu("build+serialise: struct encoder", lambda: b"".join(encode_flow_add(f, i) for i, f in enumerate(flows)))

    entries = [flow_stats_entry(f) for f in flows]
    blob = b"".join(entries)
    offsets = []
    pos = 0
    for e in entries:
        offsets.append(pos)
        pos += len(e)
    stats = cpu("read: os-ken OFPFlowStats.parser (current)",
                lambda: [parser.OFPFlowStats.parser(blob, o) for o in offsets])
    cur = cpu("read: ofmsg.flow_from_stats (current)", lambda: [ofmsg.flow_from_stats(s) for s in stats])
    lean = cpu("read: struct decoder -> Flow", lambda: [decode_flow_stats(blob, o)[0] for o in offsets])
    out["decoder_matches_current"] = cur == lean == flows
    msgs = msgs2 = stats = cur = lean = None       # let the garbage go before the gc-tuned round

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        msgs = cpu("gc tuned: build: ofmsg.flow_add", lambda: [ofmsg.flow_add(f) for f in flows])
        cpu("gc tuned: serialise: os-ken", lambda: serialise(msgs))
        msgs = None
        cpu("gc tuned: build: OFPMatch(_ordered_fields)", lambda: [fast_flow_add(f) for f in flows])
        stats = cpu("gc tuned: read: os-ken OFPFlowStats.parser",
                    lambda: [parser.OFPFlowStats.parser(blob, o) for o in offsets])
        cpu("gc tuned: read: ofmsg.flow_from_stats", lambda: [ofmsg.flow_from_stats(s) for s in stats])
    finally:
        gc.set_threshold(700, 10, 10)
        gc.unfreeze()
    return out


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(micro(int(sys.argv[1]) if len(sys.argv) > 1 else 10000), indent=1))
