"""The struct decoder of flow-stats replies gives exactly what os-ken's parser + flow_from_stats give.

Entries are encoded the way Open vSwitch sends them (tests/unit/app_harness.flow_stats_bytes:
register moves in NXM encoding) and the way OXM-only switches would; flows outside our
vocabulary (masks, other instructions, other actions, unknown fields) must take os-ken's path and
still come out equal; truncated or zero-length entries must raise, never loop.
"""
import random
import struct

import pytest

from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import ofmsg, wire
from minet_sdn.core.wire import WireFlowStats, install_flow_stats_decoder
from os_ken.ofproto import ofproto_parser

from tests.unit.app_harness import flow_stats_bytes, multipart_reply_bytes
from tests.unit.test_wire import every_flow

install_flow_stats_decoder()


def oskens_stats(flow, packets=3, octets=300):
    mod = ofmsg.flow_add(flow)
    return parser.OFPFlowStats(table_id=flow.table_id, duration_sec=1, duration_nsec=2, priority=flow.priority,
                               idle_timeout=0, hard_timeout=0, flags=0, cookie=flow.cookie,
                               packet_count=packets, byte_count=octets, match=mod.match,
                               instructions=mod.instructions)


def reference(entry: bytes):
    """os-ken's own parse of one entry, and what flow_from_stats makes of it."""
    stats = parser.OFPFlowStats.parser(entry, 0)
    return stats, ofmsg.flow_from_stats(stats)


def decode_reply(entries, xid=9):
    """Parse `entries` as os-ken does a switch's reply (in parts of at most 64 KiB, as OvS sends)."""
    parts, part = [], []
    for e in entries:
        if part and sum(map(len, part)) + len(e) > 60000:
            parts.append(part)
            part = []
        part.append(e)
    parts.append(part)
    body = []
    for i, part in enumerate(parts):
        raw = multipart_reply_bytes(ofp.OFPMP_FLOW, part, xid, more=i < len(parts) - 1)
        version, msg_type, msg_len, xid = ofproto_parser.header(raw)
        msg = ofproto_parser.msg(None, version, msg_type, msg_len, xid, bytearray(raw))
        assert type(msg) is parser.OFPFlowStatsReply          # same message class: same os-ken event
        body += msg.body
    return body


@pytest.mark.parametrize("mode", ["key", "tos"])
def test_every_flow_of_ours_decodes_like_os_ken(mode):
    flows = every_flow(mode)
    entries = [flow_stats_bytes(oskens_stats(f, packets=i, octets=7 * i)) for i, f in enumerate(flows)]
    random.Random(3).shuffle(entries)
    wire._TEMPLATES.clear()
    for _ in range(2):                           # first: field by field + compile; then: templates
        body = decode_reply(entries)
        assert len(body) == len(flows) and all(isinstance(s, WireFlowStats) for s in body)
        for entry, s in zip(entries, body):
            want_stats, want = reference(entry)
            assert s.flow == want and ofmsg.flow_from_stats(s) == want
            assert (s.cookie, s.packet_count, s.byte_count, s.table_id, s.priority, s.length) == (
                want_stats.cookie, want_stats.packet_count, want_stats.byte_count, want_stats.table_id,
                want_stats.priority, want_stats.length)
        assert set(f for f in (s.flow for s in body)) == set(flows)
    assert 1 <= len(wire._TEMPLATES) <= 8


def test_oxm_encoded_moves_decode_too():
    flow = next(f for f in every_flow("key") if f.priority == 200)
    mod = ofmsg.flow_add(flow)
    mod.datapath = type("Dp", (), {"ofproto": ofp, "ofproto_parser": parser})()
    mod.xid = 1
    mod.serialize()
    body = bytes(mod.buf[48:])                    # match + instructions as we send them (OXM moves)
    entry = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(body), 0, 0, 0, flow.priority, 0, 0, 0, flow.cookie,
                        0, 0) + body
    assert decode_reply([entry])[0].flow == reference(entry)[1] == flow


def _foreign():
    """Flows a switch may hold that our decoder does not cover: each must match os-ken's result."""
    match = parser.OFPMatch
    act = parser.OFPActionOutput
    yield parser.OFPFlowStats(table_id=3, duration_sec=0, duration_nsec=0, priority=7, idle_timeout=0,
                              hard_timeout=0, flags=0, cookie=1, packet_count=0, byte_count=0,
                              match=match(eth_dst=("02:00:00:00:00:01", "ff:ff:ff:00:00:00")),   # masked
                              instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [act(2)])])
    yield parser.OFPFlowStats(table_id=0, duration_sec=0, duration_nsec=0, priority=9, idle_timeout=0,
                              hard_timeout=0, flags=0, cookie=2, packet_count=0, byte_count=0,
                              match=match(in_port=5, vlan_vid=0x1005),                         # unknown field
                              instructions=[parser.OFPInstructionGotoTable(1)])                # other instruction
    yield parser.OFPFlowStats(table_id=0, duration_sec=0, duration_nsec=0, priority=11, idle_timeout=0,
                              hard_timeout=0, flags=0, cookie=3, packet_count=0, byte_count=0,
                              match=match(in_port=6),
                              instructions=[parser.OFPInstructionActions(
                                  ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionPushVlan(0x8100), act(1)])])
    yield parser.OFPFlowStats(table_id=0, duration_sec=0, duration_nsec=0, priority=12, idle_timeout=0,
                              hard_timeout=0, flags=0, cookie=4, packet_count=0, byte_count=0,
                              match=match(in_port=6),                                            # like ours, but
                              instructions=[parser.OFPInstructionActions(                       # a move with offset
                                  ofp.OFPIT_APPLY_ACTIONS, [parser.NXActionRegMove(
                                      src_field="eth_src", dst_field="eth_dst", n_bits=8, src_ofs=8), act(1)])])
    yield parser.OFPFlowStats(table_id=0, duration_sec=0, duration_nsec=0, priority=13, idle_timeout=0,
                              hard_timeout=0, flags=0, cookie=5, packet_count=0, byte_count=0,
                              match=match(), instructions=[parser.OFPInstructionActions(
                                  ofp.OFPIT_WRITE_ACTIONS, [act(1)])])                          # write, not apply


def test_foreign_flows_take_os_kens_path_and_come_out_equal():
    entries = [flow_stats_bytes(s) for s in _foreign()]
    ours = [flow_stats_bytes(oskens_stats(f)) for f in every_flow("key")[:20]]
    mixed = ours[:10] + entries + ours[10:]
    for entry, s in zip(mixed, decode_reply(mixed)):
        want_stats, want = reference(entry)
        assert s.flow == want
        assert str(s.match) == str(want_stats.match) and str(s.instructions) == str(want_stats.instructions)
    # a foreign entry of the same length and first field as a template of ours is still checked
    # field by field (the template's structural check fails), not decoded as ours
    assert all(decode_reply([e])[0].flow == reference(e)[1] for e in entries)


def parsed(entries):
    raw = bytearray(multipart_reply_bytes(ofp.OFPMP_FLOW, entries, 5, more=False))
    return ofproto_parser.msg(None, *ofproto_parser.header(raw), raw)


@pytest.mark.parametrize("length", [0, 8, 55])
def test_short_entries_drop_the_message_instead_of_looping(length):
    # os-ken's own entry parser loops forever on a zero-length entry; ours raises, and os-ken's
    # message parser then logs the malformed message and drops it (returns None)
    entry = struct.pack("!HBxIIHHHH4xQQQHH", length, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ofp.OFPMT_OXM, 4) + b"\0" * 4
    good = flow_stats_bytes(oskens_stats(every_flow("key")[3]))
    assert parsed([good]) is not None
    assert parsed([good, entry]) is None and parsed([entry, good]) is None


def test_an_entry_longer_than_its_message_drops_the_message():
    good = flow_stats_bytes(oskens_stats(every_flow("key")[3]))
    bad = struct.pack("!H", len(good) + 64) + good[2:]
    assert parsed([bad]) is None
    assert decode_reply([good])[0].flow == every_flow("key")[3]


def test_templates_are_bounded():
    wire._TEMPLATES.clear()
    flows = every_flow("key")
    for i in range(wire._MAX_TEMPLATES + 50):          # many distinct layouts: in_port + k tunnel ids
        stats = parser.OFPFlowStats(table_id=0, duration_sec=0, duration_nsec=0, priority=1, idle_timeout=0,
                                    hard_timeout=0, flags=0, cookie=0, packet_count=0, byte_count=0,
                                    match=parser.OFPMatch(in_port=i),
                                    instructions=[parser.OFPInstructionActions(
                                        ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(p) for p in range(i % 300)])])
        entry = flow_stats_bytes(stats)
        assert decode_reply([entry])[0].flow == reference(entry)[1]
    assert len(wire._TEMPLATES) <= wire._MAX_TEMPLATES
    assert flows
