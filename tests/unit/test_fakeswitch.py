"""The fake switch must behave like an OpenFlow 1.3 switch, or every test built on it lies."""
import os

import pytest
from os_ken.lib.packet import arp as os_arp
from os_ken.lib.packet import ethernet as os_ethernet
from os_ken.lib.packet import packet as os_packet
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from minet_sdn.core import ofmsg
from minet_sdn.core.flows import bridge_flows
from minet_sdn.topology import load_topology, parse_topology
from tests.fakeswitch import (ETH_ARP, ETH_IPV4, ETH_MPLS, FakeFabric, FakeSwitch, Packet, arp_reply,
                              arp_request, ipv4, ipv6, ipv6_ns, raw_frame)

MINIMAL = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "minimal.yaml")

MAC_A, MAC_B, MAC_FAR = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:ff"
PORTS = {1: "0a:00:00:00:00:01", 2: "0a:00:00:00:00:02", 3: "0a:00:00:00:00:03"}
PING = ipv4(MAC_A, MAC_B, "10.0.0.1", "10.0.0.2")


def add(match=None, actions=(), priority=100, cookie=0, table_id=0, flags=0, goto=None):
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))] if actions else []
    if goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(goto))
    return parser.OFPFlowMod(None, cookie=cookie, table_id=table_id, command=ofp.OFPFC_ADD, priority=priority,
                             flags=flags, match=match or parser.OFPMatch(), instructions=instructions)


def delete(match=None, strict=False, priority=100, cookie=0, cookie_mask=0, table_id=0,
           out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY):
    return parser.OFPFlowMod(None, cookie=cookie, cookie_mask=cookie_mask, table_id=table_id, priority=priority,
                             command=ofp.OFPFC_DELETE_STRICT if strict else ofp.OFPFC_DELETE,
                             match=match or parser.OFPMatch(), out_port=out_port, out_group=out_group)


def out(port):
    return parser.OFPActionOutput(port)


def switch(**kw):
    return FakeSwitch(0x6D6E000000010002, PORTS, tunnel_ports=kw.pop("tunnel_ports", (1,)), **kw)


# ---- packets --------------------------------------------------------------------------------

def test_packet_is_canonical_immutable_and_hashable():
    p = Packet(eth_src="02:00:00:00:00:AA", eth_dst=MAC_B, eth_type=0x86DD, ipv6_src="FD00:0:0::1",
               ipv6_dst="fd00::2", tunnel_id=0)
    assert p["eth_src"] == "02:00:00:00:00:aa" and p["ipv6_src"] == "fd00::1"
    assert "tunnel_id" not in p                                  # absent means 0
    assert p == dict(p) and hash(p) == hash(Packet(dict(p))) and len({p, Packet(dict(p))}) == 1
    q = p.replace(ip_dscp=5, eth_dst=None)
    assert q["ip_dscp"] == 5 and "eth_dst" not in q and "ip_dscp" not in p
    with pytest.raises(TypeError):
        p["eth_src"] = MAC_A                                     # immutable


@pytest.mark.parametrize("bad", [{"in_port": 1}, {"eth_srcc": MAC_A}, {"ip_dscp": 64},
                                 {"eth_dst": (MAC_A, "ff:ff:ff:ff:ff:ff")}])
def test_packet_refuses_what_is_not_a_header_field(bad):
    with pytest.raises(ValueError):
        Packet(bad)


def test_helpers_build_the_frames_a_router_sends():
    req = arp_request(MAC_A, "100.64.0.1", "100.64.0.2")
    assert dict(req) == {"eth_src": MAC_A, "eth_dst": "ff:ff:ff:ff:ff:ff", "eth_type": ETH_ARP, "arp_op": 1,
                         "arp_sha": MAC_A, "arp_spa": "100.64.0.1", "arp_tha": "00:00:00:00:00:00",
                         "arp_tpa": "100.64.0.2"}
    ns = ipv6_ns(MAC_A, "fd00:6d6e:1::1", "fd00:6d6e:1::abc:def2")
    assert ns["ipv6_dst"] == "ff02::1:ffbc:def2" and ns["eth_dst"] == "33:33:ff:bc:de:f2"
    assert (ns["icmpv6_type"], ns["ipv6_nd_target"], ns["ip_proto"]) == (135, "fd00:6d6e:1::abc:def2", 58)
    assert ipv6(MAC_A, MAC_B, "fd00::1", "fd00::2", dscp=3)["ip_dscp"] == 3
    assert PING["ip_proto"] == 1 and PING["icmpv4_type"] == 8
    assert raw_frame(MAC_A, MAC_B, ETH_MPLS)["eth_type"] == 0x8847
    assert arp_request(MAC_A, "1.1.1.1", "1.1.1.2").size == 60 and ns.size == 14 + 40 + 8 + 24


# ---- matching and actions -------------------------------------------------------------------

def test_set_tunnel_id_then_output_and_match_on_the_way_back():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [parser.OFPActionSetField(tunnel_id=7), out(1)]))
    sw.apply(add(parser.OFPMatch(in_port=1, tunnel_id=7), [out(2)]))
    assert sw.process(2, PING) == [(1, PING.replace(tunnel_id=7))]
    assert sw.process(1, PING.replace(tunnel_id=7)) == [(2, PING)]   # the key does not leave on a veth
    assert sw.process(1, PING.replace(tunnel_id=8)) == []
    assert sw.process(1, PING) == []
    sw.apply(add(parser.OFPMatch(in_port=1, tunnel_id=0), [out(3)]))
    assert sw.process(1, PING) == [(3, PING)]                        # no key is key 0
    with pytest.raises(ValueError):
        sw.process(2, PING.replace(tunnel_id=7))                     # a veth carries no key


def test_highest_priority_wins_and_a_miss_without_entry_drops():
    sw = switch()
    assert sw.process(2, PING) == []
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)], priority=10))
    sw.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_IPV4), [out(3)], priority=20))
    sw.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_IPV4, ipv4_dst="10.0.0.2"), [], priority=5))
    assert [e.priority for e in sw.table(0)] == [20, 10, 5]
    assert sw.process(2, PING) == [(3, PING)]
    assert sw.process(2, raw_frame(MAC_A, MAC_B, ETH_MPLS)) == [(1, raw_frame(MAC_A, MAC_B, ETH_MPLS))]
    assert sw.process(3, PING) == []


def test_masked_match_and_absent_fields():
    sw = switch()
    sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4, ipv4_dst=("10.0.0.0", "255.255.255.0")), [out(3)]))
    sw.apply(add(parser.OFPMatch(eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00")), [out(1)], priority=50))
    assert sw.process(2, PING) == [(3, PING)]
    assert sw.process(2, PING.replace(ipv4_dst="10.0.1.2")) == []
    assert sw.process(2, ipv6_ns(MAC_A, "fd00::1", "fd00::2"))[0][0] == 1     # multicast bit set
    sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4, ip_dscp=0), [out(3)], priority=200))
    assert sw.process(2, raw_frame(MAC_A, MAC_B, ETH_IPV4)) == []            # no ip_dscp in the frame


def test_same_priority_overlap_is_an_error_not_a_coin_toss():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)]))
    sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4), [out(3)]))
    with pytest.raises(RuntimeError):
        sw.process(2, PING)


def test_output_ports_in_port_flood_controller_normal():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [out(2)]))
    assert sw.process(2, PING) == []                 # back out of the in-port only via OFPP_IN_PORT
    sw.apply(add(parser.OFPMatch(in_port=2), [out(ofp.OFPP_IN_PORT)]))
    assert sw.process(2, PING) == [(2, PING)]
    sw.apply(add(parser.OFPMatch(in_port=3), [out(ofp.OFPP_FLOOD)]))
    assert [p for p, _ in sw.process(3, PING)] == [1, 2]
    sw.apply(add(parser.OFPMatch(in_port=1), [out(ofp.OFPP_CONTROLLER), out(ofp.OFPP_NORMAL)], cookie=9))
    assert sw.process(1, PING) == [(ofp.OFPP_NORMAL, PING)]
    assert [(pi.in_port, pi.packet, pi.reason, pi.cookie) for pi in sw.packet_ins] == [(1, PING, ofp.OFPR_ACTION, 9)]


def test_packet_in_from_the_table_miss_entry_says_no_match():
    sw = switch()
    sw.apply(add(parser.OFPMatch(), [out(ofp.OFPP_CONTROLLER)], priority=0, cookie=4))
    assert sw.process(3, PING) == []
    assert [(pi.in_port, pi.reason, pi.table_id, pi.cookie) for pi in sw.packet_ins] == [(3, ofp.OFPR_NO_MATCH, 0, 4)]


def test_each_output_sends_the_packet_as_it_is_at_that_point():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_IPV4),
                 [out(3), parser.OFPActionSetField(ip_dscp=9), parser.OFPActionSetField(eth_dst=MAC_FAR), out(1)]))
    assert sw.process(2, PING) == [(3, PING), (1, PING.replace(ip_dscp=9, eth_dst=MAC_FAR))]


def test_reg_move_arp_responder_answers_out_of_the_in_port():
    sw = switch()
    far_ip = "100.64.0.2"
    sw.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_ARP, arp_op=1, arp_tpa=far_ip), [
        parser.NXActionRegMove(src_field="eth_src", dst_field="eth_dst", n_bits=48),
        parser.OFPActionSetField(eth_src=MAC_FAR),
        parser.OFPActionSetField(arp_op=2),
        parser.NXActionRegMove(src_field="arp_sha", dst_field="arp_tha", n_bits=48),
        parser.NXActionRegMove(src_field="arp_spa", dst_field="arp_tpa", n_bits=32),
        parser.OFPActionSetField(arp_sha=MAC_FAR),
        parser.OFPActionSetField(arp_spa=far_ip),
        out(ofp.OFPP_IN_PORT)]))
    request = arp_request(MAC_A, "100.64.0.1", far_ip)
    assert sw.process(2, request) == [(2, arp_reply(MAC_FAR, far_ip, MAC_A, "100.64.0.1"))]
    assert sw.process(2, arp_request(MAC_A, "100.64.0.1", "100.64.0.9")) == []
    assert sw.process(3, request) == []


def test_reg_move_between_ip_fields_and_partial_bits():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_IPV4), [
        parser.NXActionRegMove(src_field="ipv4_src", dst_field="ipv4_dst", n_bits=32), out(1)]))
    sw.apply(add(parser.OFPMatch(in_port=3, eth_type=0x86DD), [
        parser.NXActionRegMove(src_field="ipv6_src", dst_field="ipv6_dst", n_bits=16, src_ofs=16, dst_ofs=32),
        out(1)]))
    assert sw.process(2, PING) == [(1, PING.replace(ipv4_dst="10.0.0.1"))]
    v6 = ipv6(MAC_A, MAC_B, "fd00::abcd:1234", "fd00::2")
    assert sw.process(3, v6) == [(1, v6.replace(ipv6_dst="fd00::abcd:0:2"))]


def test_port_down_neither_receives_nor_sends_and_bad_hw_addr_is_refused():
    sw = switch(names={1: "minim-t2"})
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)]))
    sw.apply(add(parser.OFPMatch(in_port=1), [out(2)]))
    sw.apply(ofmsg.port_mod(1, "0A:00:00:00:00:01", down=True))
    assert sw.process(2, PING) == [] and sw.process(1, PING) == []
    desc = {p.port_no: p for p in sw.apply(ofmsg.port_desc_request())}
    assert desc[1].config & ofp.OFPPC_PORT_DOWN and desc[1].state == ofp.OFPPS_LINK_DOWN
    assert desc[2].state == ofp.OFPPS_LIVE and desc[2].hw_addr == PORTS[2]
    assert (desc[1].name, desc[2].name) == (b"minim-t2", b"port2")       # bytes, as parsed from a switch
    assert [(s.reason, s.desc.port_no) for s in sw.port_status] == [(ofp.OFPPR_MODIFY, 1)]

    sw.apply(ofmsg.port_mod(1, PORTS[2], down=False))                  # wrong MAC: nothing changes
    assert [(e.type, e.code) for e in sw.errors] == [(ofp.OFPET_PORT_MOD_FAILED, ofp.OFPPMFC_BAD_HW_ADDR)]
    assert sw.process(2, PING) == []
    sw.apply(ofmsg.port_mod(9, PORTS[1], down=False))
    assert sw.errors[-1].code == ofp.OFPPMFC_BAD_PORT
    sw.apply(ofmsg.port_mod(1, PORTS[1], down=False))
    assert sw.process(2, PING) == [(1, PING)] and len(sw.errors) == 2


def test_carrier_and_hotplug_report_port_status():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [out(ofp.OFPP_ALL)]))
    sw.set_link(3, up=False)
    sw.add_port(4, "0a:00:00:00:00:04", name="extra")
    sw.remove_port(1)
    assert sw.process(2, PING) == [(4, PING)]
    assert [(s.reason, s.desc.port_no, s.desc.name) for s in sw.port_status] == [
        (ofp.OFPPR_MODIFY, 3, b"port3"), (ofp.OFPPR_ADD, 4, b"extra"), (ofp.OFPPR_DELETE, 1, b"port1")]


# ---- flow mods ------------------------------------------------------------------------------

def test_add_replaces_same_match_and_priority_keeping_counters_unless_reset():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)], cookie=1))
    sw.process(2, PING)
    sw.apply(add(parser.OFPMatch(in_port=2), [out(3)], cookie=2))
    assert len(sw.flows) == 1 and sw.process(2, PING) == [(3, PING)]
    assert (sw.flows[0].cookie, sw.flows[0].packet_count, sw.flows[0].byte_count) == (2, 2, 2 * PING.size)
    sw.apply(add(parser.OFPMatch(in_port=2), [out(3)], flags=ofp.OFPFF_RESET_COUNTS))
    assert sw.flows[0].packet_count == 0
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)], priority=101))
    assert len(sw.flows) == 2 and sw.process(2, PING) == [(1, PING)]


def test_delete_is_non_strict_delete_strict_is_exact_and_both_honour_cookie_mask():
    def fresh():
        sw = switch()
        sw.apply(add(parser.OFPMatch(in_port=2), [out(1)], priority=100, cookie=0x1_0001))
        sw.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_IPV4), [out(3)], priority=200, cookie=0x1_0002))
        sw.apply(add(parser.OFPMatch(in_port=3), [out(1)], priority=100, cookie=0x2_0001))
        sw.apply(add(parser.OFPMatch(), [], priority=0, cookie=0))
        return sw

    def left(sw):
        return sorted(e.cookie for e in sw.flows)

    sw = fresh()
    sw.apply(delete(parser.OFPMatch(in_port=2)))                      # covers the more specific one too
    assert left(sw) == [0, 0x2_0001]
    sw = fresh()
    sw.apply(delete(parser.OFPMatch(in_port=2), strict=True, priority=100))
    assert left(sw) == [0, 0x1_0002, 0x2_0001]
    sw = fresh()
    sw.apply(delete(parser.OFPMatch(in_port=2), strict=True, priority=200))   # right match, wrong priority
    assert len(sw.flows) == 4
    sw = fresh()
    sw.apply(delete(cookie=0x1_0000, cookie_mask=0xFFFF_0000))
    assert left(sw) == [0, 0x2_0001]
    sw = fresh()
    sw.apply(delete(parser.OFPMatch(in_port=2), cookie=0x1_0002, cookie_mask=0xFFFF_FFFF))
    assert left(sw) == [0, 0x1_0001, 0x2_0001]
    sw = fresh()
    sw.apply(delete(out_port=1))
    assert left(sw) == [0, 0x1_0002]
    sw = fresh()
    # os-ken's defaults out_port=0/out_group=0 select flows that output to port 0: none. A real switch
    # does the same, which is why deletes must pass OFPP_ANY and OFPG_ANY.
    sw.apply(parser.OFPFlowMod(None, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL, match=parser.OFPMatch()))
    assert len(sw.flows) == 4


def test_delete_with_a_masked_match_selects_the_entries_inside_it():
    sw = switch()
    for cookie, dst in enumerate([("10.0.0.2", "255.255.255.255"), ("10.0.0.0", "255.255.255.0"),
                                  ("10.1.0.0", "255.255.0.0"), ("10.0.0.0", "255.0.0.0")]):
        sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4, ipv4_dst=dst), [out(1)], cookie=cookie, priority=10 + cookie))
    sw.apply(delete(parser.OFPMatch(eth_type=ETH_IPV4, ipv4_dst=("10.0.0.0", "255.255.0.0"))))
    assert sorted(e.cookie for e in sw.flows) == [2, 3]


def test_modify_changes_instructions_keeps_cookie_and_counters_and_never_adds():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)], cookie=5))
    sw.process(2, PING)
    mod = parser.OFPFlowMod(None, command=ofp.OFPFC_MODIFY, match=parser.OFPMatch(in_port=2), instructions=[
        parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [out(3)])])
    sw.apply(mod)
    assert sw.process(2, PING) == [(3, PING)] and (sw.flows[0].cookie, sw.flows[0].packet_count) == (5, 2)
    strict = parser.OFPFlowMod(None, command=ofp.OFPFC_MODIFY_STRICT, priority=7, match=parser.OFPMatch(in_port=2),
                               instructions=[])
    sw.apply(strict)                                                   # other priority: no entry selected
    sw.apply(parser.OFPFlowMod(None, command=ofp.OFPFC_MODIFY, match=parser.OFPMatch(in_port=3), instructions=[]))
    assert len(sw.flows) == 1 and sw.process(2, PING) == [(3, PING)]


def test_tables_goto_and_delete_across_all_tables():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [parser.OFPActionSetField(tunnel_id=3)], goto=1))
    sw.apply(add(parser.OFPMatch(tunnel_id=3), [out(1)], table_id=1))
    assert sw.process(2, PING) == [(1, PING.replace(tunnel_id=3))]
    sw.apply(add(parser.OFPMatch(), [], table_id=1, goto=0))
    assert (sw.errors[-1].type, sw.errors[-1].code) == (ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_BAD_TABLE_ID)
    sw.apply(add(table_id=ofp.OFPTT_ALL))
    assert (sw.errors[-1].type, sw.errors[-1].code) == (ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_TABLE_ID)
    sw.apply(delete(table_id=1))
    assert [e.table_id for e in sw.flows] == [0]
    sw.apply(delete(table_id=ofp.OFPTT_ALL))
    assert sw.flows == []


def test_what_a_switch_refuses_is_recorded_and_not_installed():
    sw = switch()
    sw.apply(add(parser.OFPMatch(arp_tpa="10.0.0.1"), [out(1)]))                       # no eth_type
    sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4, ipv6_nd_target="fd00::1"), [out(1)]))
    sw.apply(add(parser.OFPMatch(in_port=2), [parser.OFPActionSetField(ip_dscp=1), out(1)]))
    sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4), [parser.OFPActionSetField(ip_dscp=64), out(1)]))
    sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4), [
        parser.NXActionRegMove(src_field="ipv4_src", dst_field="arp_spa", n_bits=32)]))
    sw.apply(add(parser.OFPMatch(), [out(ofp.OFPP_TABLE)]))
    assert [(e.type, e.code) for e in sw.errors] == [
        (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_PREREQ), (ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_PREREQ),
        (ofp.OFPET_BAD_ACTION, ofp.OFPBAC_MATCH_INCONSISTENT), (ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_SET_ARGUMENT),
        (ofp.OFPET_BAD_ACTION, ofp.OFPBAC_MATCH_INCONSISTENT), (ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_PORT)]
    assert sw.flows == [] and len(sw.sent) == 6


def test_what_the_fake_does_not_model_raises():
    sw = switch()
    with pytest.raises(NotImplementedError):
        sw.apply(add(parser.OFPMatch(eth_type=ETH_IPV4), [parser.OFPActionDecNwTtl()]))
    with pytest.raises(NotImplementedError):
        sw.apply(parser.OFPFlowMod(None, match=parser.OFPMatch(), instructions=[
            parser.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, [out(1)])]))
    with pytest.raises(TypeError):
        sw.apply(parser.OFPEchoRequest(None))


# ---- other messages -------------------------------------------------------------------------

def test_sent_log_counts_messages_by_kind_and_command():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2), [out(1)]))
    sw.apply(delete(parser.OFPMatch(in_port=2), strict=True))
    sw.apply(ofmsg.barrier())
    sw.apply(ofmsg.port_mod(1, PORTS[1], down=True))
    assert len(sw.sent_of(parser.OFPFlowMod)) == 2
    assert len(sw.sent_of(parser.OFPFlowMod, command=ofp.OFPFC_DELETE_STRICT)) == 1
    assert len(sw.sent_of(parser.OFPPortMod)) == 1 and len(sw.sent_of(parser.OFPBarrierRequest)) == 1


def test_flow_stats_filter_by_table_and_cookie_and_report_counters():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=2, eth_dst="02:00:00:00:00:0B"), [out(1)], cookie=0xAB_0001))
    sw.apply(add(parser.OFPMatch(in_port=3), [out(1)], cookie=0xCD_0001, priority=50))
    sw.apply(add(parser.OFPMatch(), [], cookie=0xAB_0000, priority=0, table_id=2))
    sw.process(2, PING)
    sw.process(2, PING)
    every = sw.apply(parser.OFPFlowStatsRequest(None, table_id=ofp.OFPTT_ALL))
    assert [s.cookie for s in every] == [0xAB_0001, 0xCD_0001, 0xAB_0000]
    assert all(isinstance(s, parser.OFPFlowStats) for s in every)
    first = every[0]
    assert (first.packet_count, first.byte_count, first.priority) == (2, 2 * PING.size, 100)
    assert dict(first.match.items()) == {"in_port": 2, "eth_dst": MAC_B}          # as a switch reports it
    assert first.instructions[0].actions[0].port == 1
    ab = sw.apply(parser.OFPFlowStatsRequest(None, table_id=ofp.OFPTT_ALL, cookie=0xAB_0000, cookie_mask=0xFF_0000))
    assert [s.cookie for s in ab] == [0xAB_0001, 0xAB_0000]
    assert [s.cookie for s in sw.apply(parser.OFPFlowStatsRequest(None, table_id=2))] == [0xAB_0000]
    assert [s.cookie for s in sw.apply(parser.OFPFlowStatsRequest(None, table_id=ofp.OFPTT_ALL,
                                                                  match=parser.OFPMatch(in_port=3)))] == [0xCD_0001]


def test_packet_out_of_serialized_frame_to_a_port_and_through_the_table():
    sw = switch()
    sw.apply(add(parser.OFPMatch(in_port=ofp.OFPP_CONTROLLER), [out(3)]))
    frame = os_packet.Packet()
    frame.add_protocol(os_ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=MAC_A, ethertype=ETH_ARP))
    frame.add_protocol(os_arp.arp(opcode=1, src_mac=MAC_A, src_ip="100.64.0.1", dst_mac="00:00:00:00:00:00",
                                  dst_ip="100.64.0.2"))
    frame.serialize()
    request = arp_request(MAC_A, "100.64.0.1", "100.64.0.2")
    sent = sw.apply(parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                        actions=[out(2), out(ofp.OFPP_TABLE)], data=frame.data))
    assert sent == [(2, request), (3, request)] and sw.packet_out_outputs == sent


# ---- fabric ---------------------------------------------------------------------------------

def test_fabric_carries_tunnel_key_and_dscp_to_the_far_switch():
    a, b = FakeSwitch(1, PORTS, tunnel_ports=(1,)), FakeSwitch(2, PORTS, tunnel_ports=(1,))
    fabric = FakeFabric()
    fabric.connect(a, 1, b, 1)
    a.apply(add(parser.OFPMatch(in_port=2, eth_type=ETH_IPV4),
                [parser.OFPActionSetField(tunnel_id=5), parser.OFPActionSetField(ip_dscp=5), out(1)]))
    b.apply(add(parser.OFPMatch(in_port=1, tunnel_id=5, eth_type=ETH_IPV4, ip_dscp=5), [out(3)]))
    assert fabric.deliver(a, 2, PING) == [(b, 3, PING.replace(ip_dscp=5))]
    a.apply(add(parser.OFPMatch(in_port=3, eth_type=ETH_IPV4), [parser.OFPActionSetField(ip_dscp=5), out(1)]))
    assert fabric.deliver(a, 3, PING) == []                          # same mark, no key: b drops it
    for sw in (a, b):
        sw.apply(add(parser.OFPMatch(in_port=1), [out(ofp.OFPP_IN_PORT)], priority=200))
    with pytest.raises(RuntimeError):
        fabric.deliver(a, 2, PING)                                   # ping-pong across the tunnel
    with pytest.raises(ValueError):
        fabric.connect(a, 2, b, 2)                                   # not tunnel ports


# ---- the project's own flows ----------------------------------------------------------------

def bridges_of(topo):
    """A fake switch per remote bridge of `topo`, holding the flows the controller computes."""
    switches = {}
    for bridge in topo.bridges.values():
        ports = {bridge.tunnel_ofport: "0e:00:00:00:00:01"}
        ports.update({topo.link(lid).ofport: "0e:00:00:00:%02x:%02x" % (lid >> 8, lid & 0xFF)
                      for lid in bridge.link_ids})
        sw = FakeSwitch(bridge.dpid, ports, tunnel_ports=(bridge.tunnel_ofport,))
        for flow in bridge_flows(topo, bridge, ports).values():
            sw.apply(ofmsg.flow_add(flow))
        assert sw.errors == [], sw.errors
        switches[(bridge.server, bridge.peer)] = sw
    fabric = FakeFabric()
    for (server, peer), sw in switches.items():
        if server < peer:
            fabric.connect(sw, 1, switches[(peer, server)], 1)
    return switches, fabric


def test_project_flows_send_link_1_into_the_tunnel_with_key_1_and_answer_arp():
    topo = load_topology(MINIMAL)
    switches, fabric = bridges_of(topo)
    link = topo.link(1)
    vm1 = switches[(link.a.server, link.b.server)]
    here, far = link.side("VM1"), link.far("VM1")
    frame = ipv4(here.mac, far.mac, here.ip, far.ip)
    assert vm1.process(link.ofport, frame) == [(1, frame.replace(tunnel_id=1))]
    assert fabric.deliver(vm1, link.ofport, frame) == [(switches[("VM2", "VM1")], link.ofport, frame)]
    assert vm1.process(link.ofport, arp_request(here.mac, here.ip, far.ip)) == [
        (link.ofport, arp_reply(far.mac, far.ip, here.mac, here.ip))]
    assert fabric.deliver(vm1, link.ofport, arp_request(here.mac, here.ip, "100.64.0.99")) == []


def test_project_flows_in_tos_mode_mark_and_unmark_dscp():
    with open(MINIMAL) as f:
        topo = parse_topology(f.read() + "\nfabric: {isolation: tos}\n")
    switches, fabric = bridges_of(topo)
    link = topo.link(2)
    vm1, vm2 = switches[("VM1", "VM2")], switches[("VM2", "VM1")]
    here, far = link.side("VM1"), link.far("VM1")
    frame = ipv6(here.mac, far.mac, here.ip6, far.ip6, dscp=46)
    assert vm1.process(link.ofport, frame) == [(1, frame.replace(ip_dscp=2))]
    assert fabric.deliver(vm1, link.ofport, frame) == [(vm2, link.ofport, frame.replace(ip_dscp=0))]
    assert fabric.deliver(vm1, link.ofport, raw_frame(here.mac, far.mac, ETH_MPLS)) == []


def test_project_flows_read_back_equal_the_flows_sent():
    topo = load_topology(MINIMAL)
    bridge = next(iter(topo.bridges.values()))
    switches, _ = bridges_of(topo)
    sw = switches[(bridge.server, bridge.peer)]
    wanted = bridge_flows(topo, bridge, [1] + [topo.link(lid).ofport for lid in bridge.link_ids])
    read = [ofmsg.flow_from_stats(s) for s in sw.apply(ofmsg.flow_stats_request(ours_only=True))]
    assert sorted(read, key=repr) == sorted(wanted.values(), key=repr)
