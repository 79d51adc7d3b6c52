"""The fast FlowMod encoder gives exactly the bytes os-ken gives for the same flow."""
import pytest

from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import ofmsg
from minet_sdn.core.flows import Flow, bridge_flows
from minet_sdn.core.wire import PackedFlowMod, encode_flow_mod
from minet_sdn.topology import parse_topology

TOPO = """
name: w
fabric: {isolation: %s}
servers: {VM1: {underlay_ip: 192.0.2.1}, VM2: {underlay_ip: 192.0.2.2}}
ases: {1: {server: VM1, routers: [A]}, 2: {server: VM2, routers: [B]}}
links:
%s
"""


class _Dp:
    ofproto, ofproto_parser = ofp, parser


def oskens_bytes(flow, command, xid):
    """What os-ken itself sends for `flow`."""
    kw = dict(table_id=flow.table_id, command=command, priority=flow.priority,
              match=parser.OFPMatch(**dict(flow.match)))
    if command == ofp.OFPFC_ADD:
        kw.update(cookie=flow.cookie, instructions=ofmsg.instructions(flow.actions))
    else:
        kw.update(out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY)
    msg = parser.OFPFlowMod(_Dp(), **kw)
    msg.xid = xid
    msg.serialize()
    return bytes(msg.buf)


def every_flow(mode):
    # 300 links: ids and marks past one byte, link ports past 255
    links = "\n".join("  - {a: 1.A, b: 2.B, rel: peer}" for _ in range(300 if mode == "key" else 63))
    t = parse_topology(TOPO % (mode, links), "w.yaml")
    b = t.bridge("VM1", "VM2")
    return list(bridge_flows(t, b, [1] + [t.link(lid).ofport for lid in b.link_ids]).values())


@pytest.mark.parametrize("mode", ["key", "tos"])
@pytest.mark.parametrize("command", [ofp.OFPFC_ADD, ofp.OFPFC_DELETE_STRICT])
def test_every_flow_encodes_like_os_ken(mode, command):
    flows = every_flow(mode)
    assert len({f.actions[0][0] for f in flows if f.actions}) >= 2
    for xid, flow in enumerate(flows, start=1):
        assert encode_flow_mod(flow, command, xid) == oskens_bytes(flow, command, xid), flow


def test_a_packed_flow_mod_reads_like_an_os_ken_one():
    flow = next(f for f in every_flow("key") if f.priority == 200)     # proxy ARP: moves + set_fields
    msg = PackedFlowMod(flow, ofp.OFPFC_ADD)
    assert isinstance(msg, parser.OFPFlowMod)
    assert dict(msg.match.items()) == dict(flow.match)
    stats = parser.OFPFlowStats(table_id=0, priority=msg.priority, cookie=msg.cookie, match=msg.match,
                                instructions=msg.instructions)
    assert ofmsg.flow_from_stats(stats) == flow
    msg.datapath = _Dp()
    msg.xid = 7
    msg.serialize()
    assert msg.msg_len == len(msg.buf) and bytes(msg.buf) == oskens_bytes(flow, ofp.OFPFC_ADD, 7)


def test_unknown_commands_and_actions_are_refused():
    flow = Flow.make(1, {"in_port": 1}, (("output", 2),), 1)
    with pytest.raises(ValueError):
        encode_flow_mod(flow, ofp.OFPFC_MODIFY, 1)
    with pytest.raises(ValueError):
        encode_flow_mod(Flow.make(1, {}, (("group", 1),), 1), ofp.OFPFC_ADD, 1)
