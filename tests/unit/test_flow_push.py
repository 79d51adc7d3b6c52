"""How the real app pushes flows: runs of FlowMods inside one ONF bundle, bytes os-ken would make.

Through the fake switches of app_harness (which apply a bundle's FlowMods only at COMMIT); the
atomicity itself (a refused bundle leaves the old table) is proven on real Open vSwitch in
tests/integration/test_bundle_ovs.py.
"""
import struct

import pytest

from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import ofmsg, wire
from minet_sdn.core.flows import Flow, bridge_flows, prepare

from tests.unit.app_harness import Lab
from tests.unit.test_remote_links_app import FLOWS_PER_LINK, TOPOLOGY
from tests.unit.test_wire import every_flow

CTRL, ADD = ofp.ONF_ET_BUNDLE_CONTROL, ofp.ONF_ET_BUNDLE_ADD_MESSAGE


class _Dp:
    ofproto, ofproto_parser = ofp, parser


def test_bundle_messages_are_the_bytes_os_ken_would_send():
    flow = every_flow("key")[5]
    inner = wire.encode_flow_mod(flow, ofp.OFPFC_ADD, 77)
    for ctrl in (ofp.ONF_BCT_OPEN_REQUEST, ofp.ONF_BCT_COMMIT_REQUEST):
        msg = parser.ONFBundleCtrlMsg(_Dp(), 9, ctrl, wire.BUNDLE_FLAGS, [])
        msg.set_xid(5)
        msg.serialize()
        assert wire.bundle_ctrl(9, ctrl, 5) == bytes(msg.buf)
    mod = ofmsg.flow_add(flow)
    mod.datapath = _Dp()
    add = parser.ONFBundleAddMsg(_Dp(), 9, wire.BUNDLE_FLAGS, mod, [])
    add.set_xid(77)
    add.serialize()
    assert wire.bundle_add(9, 77, inner) == bytes(add.buf)


def test_packer_bundles_runs_of_flow_mods_and_keeps_other_messages_in_place():
    flows = every_flow("key")[:7]
    barrier = ofmsg.barrier()
    port_mod = ofmsg.port_mod(101, "02:00:00:00:00:01", True)
    port_mod2 = ofmsg.port_mod(102, "02:00:00:00:00:02", False)
    msgs = ([ofmsg.flow_add(f) for f in flows[:4]] + [port_mod] + [ofmsg.flow_delete(flows[4])] + [port_mod2]
            + [ofmsg.flow_add(f) for f in flows[5:]] + [barrier])
    seen = []

    def other(msg, xid):
        msg.datapath = _Dp()
        msg.set_xid(xid)
        msg.serialize()
        seen.append(msg)
        return msg.buf
    ids = iter(range(40, 50))
    packer = wire.Packer(1000, lambda: next(ids), chunk=200)      # small chunks: runs cross them
    chunks = packer.pack(msgs, other)
    assert all(len(c) < 200 + 300 for c in chunks) and len(chunks) > 3
    data, order, offset, mods = b"".join(chunks), [], 0, []
    while offset < len(data):
        _, mtype, length, xid = struct.unpack_from("!BBHI", data, offset)
        if mtype == ofp.OFPT_EXPERIMENTER:
            _, exp_type, bid = struct.unpack_from("!III", data, offset + 8)
            if exp_type == CTRL:
                order.append(("ctrl", bid, struct.unpack_from("!H", data, offset + 20)[0]))
            else:
                inner = data[offset + 24:offset + length]
                assert struct.unpack_from("!I", inner, 4)[0] == xid          # inner xid = the add's
                order.append(("add", bid))
                mods.append(inner)
        elif mtype == ofp.OFPT_FLOW_MOD:
            order.append(("mod", xid))
            mods.append(data[offset:offset + length])
        else:
            order.append(("other", mtype))
        assert xid == 1001 + len(order) - 1                                   # xids count on, one per message
        offset += length
    kinds = [o[0] if o[0] != "ctrl" else ("open" if o[2] == ofp.ONF_BCT_OPEN_REQUEST else "commit") for o in order]
    # 4 adds bundled; the PortMod after the commit; a lone delete unbundled; 2 adds bundled; barrier
    assert kinds == (["open"] + ["add"] * 4 + ["commit", "other", "mod", "other", "open"] + ["add"] * 2
                     + ["commit", "other"])
    assert [b[0] for b in packer.bundles] == [40, 41] and [b[2] for b in packer.bundles] == [4, 2]
    assert packer.xid == 1000 + len(order)
    assert seen == [port_mod, port_mod2, barrier]
    flow_msgs = [m for m in msgs if isinstance(m, wire.PackedFlowMod)]
    assert mods == [wire.encode_flow_mod(m.flow, m.command, m.xid) for m in flow_msgs]   # same bytes, own xids


@pytest.mark.parametrize("mode", ["key", "tos"])
def test_a_sync_is_one_bundle_committed_before_its_barrier(tmp_path, mode):
    lab = Lab(tmp_path, TOPOLOGY % mode)
    assert lab.problems() == []
    for dpid, dp in lab.dps.items():
        bridge = lab.topo.bridges[dpid]
        log = dp.bundle_log
        assert [e[0] for e in log] == [CTRL] + [ADD] * (len(log) - 2) + [CTRL]    # open, adds, commit
        assert len({e[1] for e in log}) == 1 and not dp.bundles                  # one bundle, closed
        n_flows = 2 + FLOWS_PER_LINK[mode] * len(bridge.link_ids)
        assert len(log) - 2 == n_flows
        assert len(lab.switches[dpid].table()) == n_flows
        # the barrier comes after the commit
        kinds = [struct.unpack_from("!B", w, 1)[0] for w in dp.wire]
        assert kinds[-1] == ofp.OFPT_BARRIER_REQUEST
    # a reconnect with nothing changed sends no bundle at all
    dpid = next(iter(lab.dps))
    dp = lab.reconnect(dpid)
    lab.pump()
    assert dp.bundle_log == []
    assert lab.problems() == []


def test_flow_values_and_their_keys():
    f = Flow.make(3, {"in_port": 1, "eth_type": 0x800}, (("output", 2),), 5)
    assert f.key == (0, 3, (("eth_type", 0x800), ("in_port", 1)))
    assert f == Flow(3, (("eth_type", 0x800), ("in_port", 1)), (("output", 2),), 5, 0) and hash(f) == hash(
        Flow(3, (("eth_type", 0x800), ("in_port", 1)), (("output", 2),), 5))
    assert f != f._replace(actions=())


def test_prepared_flows_are_the_flows_a_bridge_gets():
    from minet_sdn.topology import parse_topology
    t = parse_topology(TOPOLOGY % "tos", "app.yaml")
    assert prepare(t) == sum(5 * len(b.link_ids) for b in t.bridges.values())
    for b in t.bridges.values():
        ports = [1] + [t.link(lid).ofport for lid in b.link_ids]
        again = bridge_flows(parse_topology(TOPOLOGY % "tos", "app.yaml"), b, ports)   # other topology object
        assert bridge_flows(t, b, ports) == again
