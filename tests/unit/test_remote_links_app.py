"""The real os-ken app (RemoteLinks) driven through fake switches: events in, OpenFlow out.

Everything goes through the app class and os-ken's own message encoding (see app_harness.py);
what the pure core decides is covered in test_fabric_core.py. Here we check what a router on a
link would notice: where its frames come out, what ARP answers it gets, when its port loses
carrier, and what the REST API says about it, in both isolation modes.
"""
import json
import logging
import random
import re
import struct

import pytest

from minet_sdn.apps import remote_links
from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import errors
from minet_sdn.rest.api import make_app
from minet_sdn.topology import parse_topology
from minet_sdn.topology.model import COOKIE_MAGIC, MAGIC, instance_hash16, link_cookie
from os_ken.lib.packet import arp as os_arp
from os_ken.lib.packet import ether_types
from os_ken.lib.packet import ethernet as os_ethernet
from os_ken.lib.packet import ipv4 as os_ipv4
from os_ken.lib.packet import lldp as os_lldp
from os_ken.lib.packet import packet as os_packet

from tests.fakeswitch import (ETH_MPLS, FakeSwitch, arp_reply, arp_request, ipv4, ipv6, ipv6_ns,
                              raw_frame)
from tests.unit.app_harness import (MODES, TUNNEL, Lab, carried, flow_stats_bytes, inject_from_tunnel,
                                   multipart_reply_bytes, port_bytes, port_status_bytes, shared_labs,
                                   three_servers)

# Three servers; three parallel links between VM1 and VM2 (one of them written b-side first), two
# between VM2 and VM3, one between VM1 and VM3, and one local link on VM2. Link ids and tos
# marks differ (marks restart per server pair), so a mix-up between them shows.
TOPOLOGY = three_servers("app", """\
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM2, routers: [C, D]}
  3: {server: VM3, routers: [E]}
  4: {server: VM2, routers: [F]}
links:
  - {a: 1.A, b: 2.C, rel: peer}
  - {a: 1.B, b: 2.D, rel: provider}
  - {a: 2.C, b: 3.E, rel: customer}
  - {a: 2.C, b: 4.F, rel: peer}
  - {a: 1.A, b: 2.D, rel: customer}
  - {a: 3.E, b: 2.D, rel: peer}
  - {a: 1.B, b: 3.E, rel: peer}
""")

T = parse_topology(TOPOLOGY % "key", "app.yaml")        # same shape in both modes
REMOTE = [link.id for link in T.remote_links]
LOCAL = [link.id for link in T.links if not link.remote]
SIDES = [(link.id, server) for link in T.remote_links for server in link.servers()]
BRIDGES = [(b.server, b.peer) for b in T.bridges.values()]
FLOWS_PER_LINK = {"key": 3, "tos": 5}
PORT_DOWN = ofp.OFPPC_PORT_DOWN


def test_the_topology_has_what_these_tests_need():
    assert len(T.servers) == 3 and LOCAL == [4] and len(REMOTE) == 6
    assert len(T.bridge("VM1", "VM2").link_ids) == 3
    assert T.link_marks == {1: 1, 2: 2, 5: 3, 3: 1, 6: 2, 7: 1}
    assert T.link(6).a.server == "VM3"


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(params=MODES)
def mode(request):
    return request.param


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One lab per mode for the read-only data-path tests (they change nothing but counters)."""
    return shared_labs(tmp_path_factory, TOPOLOGY)


@pytest.fixture
def make_lab(tmp_path):
    """Fresh labs; after the test, none may show a problem the test did not declare in lab.expected."""
    labs = []

    def make(mode, **kw):
        where = tmp_path / f"lab{len(labs)}"
        where.mkdir()
        lab = Lab(where, TOPOLOGY % mode, **kw)
        labs.append(lab)
        return lab
    yield make
    for lab in labs:
        assert lab.problems(ignore=lab.expected) == []


@pytest.fixture
def lab(make_lab, mode):
    return make_lab(mode)


def port_mods(lab, mark):
    """{bridge label: {(port, hw_addr, config, mask)}} of the PortMods sent since `mark` (never twice the same)."""
    out = {}
    for dpid, msgs in lab.sent_since(mark, parser.OFPPortMod).items():
        mods = [(m.port_no, m.hw_addr, m.config, m.mask) for m in msgs]
        assert len(set(mods)) == len(mods), f"repeated PortMod to {lab.label(lab.switches[dpid])}: {mods}"
        out[lab.label(lab.switches[dpid])] = set(mods)
    return out


def flow_mods(lab, mark, **attrs):
    return [m for msgs in lab.sent_since(mark, parser.OFPFlowMod, **attrs).values() for m in msgs]


def link_state(lab, lid):
    return lab.call(lab.app.link, lid)["state"]


def crosses(lab, lid, server):
    """Does an IPv4 frame from `server`'s router of link `lid` reach the far router?"""
    near, far, _, fsw = lab.ends(lid, server)
    out = lab.send(server, lid, ipv4(near.mac, far.mac, near.ip, far.ip))
    return out == [(fsw, T.link(lid).ofport, ipv4(near.mac, far.mac, near.ip, far.ip))] or (
        out and lab.where(out))


# ---- isolation, exhaustively ---------------------------------------------------------------------

@pytest.mark.parametrize("lid,server", SIDES)
def test_a_links_frames_come_out_at_its_far_port_only(shared, mode, lid, server):
    lab = shared(mode)
    near, far, nsw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    frames = {
        "ipv4 ping, EF + ECN": ipv4(near.mac, far.mac, near.ip, far.ip, dscp=46).replace(ip_ecn=1),
        "ipv4 tcp (BGP)": ipv4(near.mac, far.mac, near.ip, far.ip, dscp=48, proto=6),
        "ipv6 ping, AF11 + ECN": ipv6(near.mac, far.mac, near.ip6, far.ip6, dscp=10).replace(ip_ecn=2),
        "ipv6 neighbour solicitation": ipv6_ns(near.mac, near.ip6, far.ip6).replace(ip_dscp=48),
        "ipv6 to a link-local group": ipv6(near.mac, "33:33:00:00:00:01", near.ip6, "ff02::1"),
        "ipv4 broadcast": ipv4(near.mac, "ff:ff:ff:ff:ff:ff", near.ip, "255.255.255.255", dscp=1),
    }
    for name, pkt in frames.items():
        got = lab.where(lab.send(server, lid, pkt))
        assert got == [(lab.label(fsw), port, carried(mode, pkt))], name
    mpls = raw_frame(near.mac, far.mac, ETH_MPLS)
    got = lab.where(lab.send(server, lid, mpls))
    assert got == ([(lab.label(fsw), port, mpls)] if mode == "key" else []), "non-IP (MPLS)"
    assert lab.problems() == []


@pytest.mark.parametrize("lid,server", SIDES)
def test_proxy_arp_answers_only_for_the_far_end(shared, mode, lid, server):
    lab = shared(mode)
    near, far, nsw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    reply = arp_reply(far.mac, far.ip, near.mac, near.ip)
    assert reply["eth_src"] == far.mac and reply["arp_tha"] == near.mac and reply["arp_tpa"] == near.ip
    request = arp_request(near.mac, near.ip, far.ip)
    assert lab.where(lab.send(server, lid, request)) == [(lab.label(nsw), port, reply)]
    # Linux re-validates a neighbour with a unicast request: same answer
    unicast = request.replace(eth_dst=far.mac)
    assert lab.where(lab.send(server, lid, unicast)) == [(lab.label(nsw), port, reply)]
    for other in (near.ip, "100.64.255.254", "192.0.2.2", "10.0.0.1"):
        assert lab.send(server, lid, arp_request(near.mac, near.ip, other)) == [], other
    # replies and gratuitous ARP cross nothing either
    assert lab.send(server, lid, arp_reply(near.mac, near.ip, far.mac, far.ip)) == []
    assert lab.send(server, lid, arp_request(near.mac, near.ip, near.ip)) == []
    assert lab.problems() == []


@pytest.mark.parametrize("other", REMOTE)
@pytest.mark.parametrize("lid,server", SIDES)
def test_frames_marked_or_addressed_for_another_link_stay_on_their_own(shared, mode, lid, server, other):
    lab = shared(mode)
    near, far, nsw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    theirs = T.link(other)
    mark = T.link_marks[other]
    expect = lambda pkt: [(lab.label(fsw), port, carried(mode, pkt))]  # noqa: E731
    # already carrying the other link's DSCP mark
    for pkt in (ipv4(near.mac, far.mac, near.ip, far.ip, dscp=mark),
                ipv6(near.mac, far.mac, near.ip6, far.ip6, dscp=mark)):
        assert lab.where(lab.send(server, lid, pkt)) == expect(pkt), pkt
    # addressed to the other link's routers
    for end in (theirs.a, theirs.b):
        pkt = ipv4(near.mac, end.mac, near.ip, end.ip, dscp=mark)
        assert lab.where(lab.send(server, lid, pkt)) == expect(pkt), pkt
        pkt = ipv6(near.mac, end.mac, near.ip6, end.ip6)
        assert lab.where(lab.send(server, lid, pkt)) == expect(pkt), pkt
    # with the other link's key already in the tunnel metadata
    for pkt in (ipv4(near.mac, far.mac, near.ip, far.ip), ipv6_ns(near.mac, near.ip6, far.ip6)):
        assert lab.where(lab.send(server, lid, pkt, preset_tunnel_id=other)) == expect(pkt), pkt
    mpls = raw_frame(near.mac, far.mac, ETH_MPLS)
    assert lab.where(lab.send(server, lid, mpls, preset_tunnel_id=other)) == (
        expect(mpls) if mode == "key" else [])
    # no ARP answer for the other link's addresses
    if other != lid:
        for end in (theirs.a, theirs.b):
            assert lab.send(server, lid, arp_request(near.mac, near.ip, end.ip)) == [], end.ip
    assert lab.problems() == []


@pytest.mark.parametrize("other", REMOTE)
@pytest.mark.parametrize("server,peer", BRIDGES)
def test_a_frame_from_the_tunnel_reaches_only_the_link_its_mark_names(shared, mode, server, peer, other):
    lab = shared(mode)
    theirs = T.link(other)
    got, want, targets = inject_from_tunnel(lab, mode, server, peer, other)
    if mode == "tos":
        assert len(targets) <= 1           # marks are unique within a pair
        if other in T.bridge(server, peer).link_ids:
            assert targets == [other]
    assert got == want
    if mode == "key":
        sw = lab.bridge_switch(server, peer)
        mpls = raw_frame(theirs.a.mac, theirs.b.mac, ETH_MPLS).replace(tunnel_id=other)
        assert lab.where(lab.inject(server, peer, mpls)) == [
            (lab.label(sw), T.link(lid).ofport, mpls.replace(tunnel_id=None)) for lid in targets]
    assert lab.problems() == []


@pytest.mark.parametrize("server,peer", BRIDGES)
def test_unmarked_arp_and_foreign_frames_from_the_tunnel_go_nowhere(shared, mode, server, peer):
    lab = shared(mode)
    links = [T.link(lid) for lid in T.bridge(server, peer).link_ids]
    a, b = links[0].a, links[0].b
    frames = [ipv4(a.mac, b.mac, a.ip, b.ip), ipv6(a.mac, b.mac, a.ip6, b.ip6),
              raw_frame(a.mac, b.mac, ETH_MPLS), arp_request(a.mac, a.ip, b.ip)]
    for link in links:
        frames.append(arp_request(a.mac, a.ip, link.a.ip).replace(tunnel_id=link.id))
        frames.append(arp_reply(a.mac, a.ip, b.mac, b.ip).replace(ip_dscp=None, tunnel_id=link.id))
    frames.append(ipv4(a.mac, b.mac, a.ip, b.ip).replace(tunnel_id=999))
    if mode == "tos":
        frames.append(ipv4(a.mac, b.mac, a.ip, b.ip, dscp=len(links) + 1))   # a mark nobody has here
        frames.append(raw_frame(a.mac, b.mac, ETH_MPLS).replace(tunnel_id=links[0].id))
    for pkt in frames:
        assert lab.inject(server, peer, pkt) == [], pkt
    assert lab.problems() == []


def test_no_packet_in_over_a_whole_run(lab, mode):
    """No flow of ours sends to the controller, whatever the routers send."""
    rng = random.Random(7)
    for lid, server in SIDES:
        near, far, _, _ = lab.ends(lid, server)
        frames = [ipv4(near.mac, far.mac, near.ip, far.ip, dscp=rng.randrange(64)),
                  ipv6_ns(near.mac, near.ip6, far.ip6), arp_request(near.mac, near.ip, far.ip),
                  arp_request(near.mac, near.ip, "203.0.113.9"), arp_reply(near.mac, near.ip, far.mac, far.ip),
                  raw_frame(near.mac, "01:80:c2:00:00:0e", ether_types.ETH_TYPE_LLDP),
                  raw_frame(near.mac, "ff:ff:ff:ff:ff:ff", 0x9000), raw_frame(near.mac, far.mac, ETH_MPLS)]
        for pkt in frames:
            lab.send(server, lid, pkt)
    for server, peer in BRIDGES:
        for key in range(0, 10):
            lab.inject(server, peer, raw_frame("02:00:00:00:00:01", "02:00:00:00:00:02", 0x88B5).replace(tunnel_id=key))
            lab.inject(server, peer, ipv4("02:00:00:00:00:01", "02:00:00:00:00:02", "1.1.1.1", "2.2.2.2", dscp=key)
                       .replace(tunnel_id=key))
    assert lab.app.extra["packet_in"] == 0
    assert all(sw.packet_ins == [] for sw in lab.switches.values())
    for sw in lab.switches.values():
        for entry in sw.flows:
            assert not entry.outputs_to(ofp.OFPP_CONTROLLER), entry
            assert not entry.outputs_to(ofp.OFPP_NORMAL) and not entry.outputs_to(ofp.OFPP_FLOOD), entry


def test_every_bridge_holds_exactly_the_flows_of_its_links(lab, mode):
    for dpid, bridge in T.bridges.items():
        flows = lab.switches[dpid].flows
        assert len(flows) == 2 + FLOWS_PER_LINK[mode] * len(bridge.link_ids)
        assert {e.cookie for e in flows} == {link_cookie(0)} | {link_cookie(lid) for lid in bridge.link_ids}
        assert {e.table_id for e in flows} == {0}


# ---- resync through the app -------------------------------------------------------------------

@pytest.mark.parametrize("parts", [0, 1, 3], ids=["one-reply", "one-entry-per-part", "parts-of-3"])
@pytest.mark.parametrize("dead_first", [True, False], ids=["dead-then-up", "up-then-dead"])
def test_reconnecting_with_an_unchanged_table_sends_no_flow_mod(make_lab, mode, parts, dead_first):
    lab = make_lab(mode, parts=parts)
    assert lab.app.core.counters["sync"] == len(T.bridges)
    for dpid in T.bridges:
        before = lab.table(dpid)
        mark = lab.mark()
        new = lab.reconnect(dpid, dead_first=dead_first)
        sent = lab.sent_since(mark)
        assert list(sent) == [dpid]
        assert [type(m) for m in sent[dpid]] == [parser.OFPPortDescStatsRequest, parser.OFPFlowStatsRequest]
        assert lab.table(dpid) == before
        assert lab.app.datapaths[dpid] is new
    assert lab.app.core.counters["sync"] == 2 * len(T.bridges)
    assert lab.call(lab.app.health)["connected"] == len(T.bridges)
    assert all(s["synced"] and s["connected"] for s in lab.call(lab.app.switches))
    # the new connections are the ones in use
    mark = lab.mark()
    lab.call(lab.app.fail_link, 1)
    assert set(port_mods(lab, mark)) == {"VM1>VM2", "VM2>VM1"}


def _ingress_entry(sw, port):
    return next(e for e in sw.table() if e.priority == 100 and e.match.get("in_port") == (port, None)
                and e.match.get("eth_type", (0x0800, None)) == (0x0800, None))


def _add(sw, priority, match, actions, cookie, table_id=0):
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    sw.apply(parser.OFPFlowMod(None, cookie=cookie, table_id=table_id, command=ofp.OFPFC_ADD, priority=priority,
                               match=parser.OFPMatch(**match), instructions=inst))
    assert not sw.errors


def test_reconnect_repairs_one_stale_and_one_missing_flow_with_one_delete_and_one_add(lab, mode):
    lid, server = 2, "VM1"
    near, far, sw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    want = lab.table(sw.dpid)
    missing = _ingress_entry(sw, port)
    sw.flows.remove(missing)                                        # lost behind our back
    _add(sw, 100, {"in_port": 4242}, [parser.OFPActionOutput(TUNNEL)], link_cookie(99))   # stale
    assert lab.send(server, lid, ipv4(near.mac, far.mac, near.ip, far.ip)) == []
    mark = lab.mark()
    lab.reconnect(sw.dpid)
    sent = lab.sent_since(mark)
    assert list(sent) == [sw.dpid]
    mods = [m for m in sent[sw.dpid] if isinstance(m, parser.OFPFlowMod)]
    assert [(m.command, m.priority, dict(m.match.items())) for m in mods if m.command != ofp.OFPFC_ADD] == [
        (ofp.OFPFC_DELETE_STRICT, 100, {"in_port": 4242})]
    adds = [m for m in mods if m.command == ofp.OFPFC_ADD]
    assert len(adds) == 1 and len(mods) == 2
    assert (adds[0].priority, adds[0].cookie) == (missing.priority, missing.cookie)
    assert {k: (v, None) for k, v in adds[0].match.items()} == missing.match
    assert isinstance(sent[sw.dpid][-1], parser.OFPBarrierRequest)
    assert lab.table(sw.dpid) == want
    assert crosses(lab, lid, server) is True


def test_reconnect_removes_foreign_flows_and_replaces_a_tampered_one_without_flushing(lab, mode):
    lid, server = 5, "VM2"
    near, far, sw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    want = lab.table(sw.dpid)
    _add(sw, 5, {}, [parser.OFPActionOutput(ofp.OFPP_NORMAL)], 0)                   # someone's NORMAL
    _add(sw, 0, {}, [parser.OFPActionOutput(ofp.OFPP_NORMAL)], 0, table_id=3)      # in another table
    # our egress flow for the link, cross-connected to another link's port
    egress = next(e for e in sw.table() if e.match.get("in_port") == (TUNNEL, None) and e.outputs_to(port))
    wrong = T.link(2).ofport
    _add(sw, egress.priority, {k: v for k, (v, _) in egress.match.items()}, [parser.OFPActionOutput(wrong)],
         egress.cookie)
    mark = lab.mark()
    lab.reconnect(sw.dpid)
    mods = flow_mods(lab, mark)
    deletes = [(m.table_id, m.priority, dict(m.match.items())) for m in mods if m.command != ofp.OFPFC_ADD]
    assert sorted(deletes) == [(0, 5, {}), (3, 0, {})]
    assert all(m.command == ofp.OFPFC_DELETE_STRICT for m in mods if m.command != ofp.OFPFC_ADD)
    adds = [m for m in mods if m.command == ofp.OFPFC_ADD]
    assert len(adds) == 1 and adds[0].priority == egress.priority and adds[0].cookie == egress.cookie
    assert lab.table(sw.dpid) == want
    # the far router's frames reach this link's router again, not link 2's
    assert lab.where(lab.send(far.server, lid, ipv4(far.mac, near.mac, far.ip, near.ip))) == [
        (lab.label(sw), port, ipv4(far.mac, near.mac, far.ip, near.ip))]


def test_changes_made_while_disconnected_are_found_on_reconnect(lab, mode):
    x = lab.bridge_switch("VM1", "VM2")
    y = lab.bridge_switch("VM2", "VM1")
    p1, p2 = T.link(1).ofport, T.link(2).ofport
    lab.disconnect(x.dpid)
    lab.pump()
    x.remove_port(p1)                  # router of link 1 deleted, router of link 2 lost carrier
    x.set_link(p2, False)
    mark = lab.mark()
    lab.pump()
    assert lab.sent_since(mark) == {}  # nobody told the app
    lab.connect(x.dpid)
    lab.pump()
    deleted = flow_mods(lab, mark, command=ofp.OFPFC_DELETE_STRICT)
    assert len(deleted) == FLOWS_PER_LINK[mode] and len(flow_mods(lab, mark)) == len(deleted)
    assert {e.cookie for e in x.flows} == {link_cookie(0), link_cookie(2), link_cookie(5)}
    assert port_mods(lab, mark) == {"VM2>VM1": {(p1, y.ports[p1].hw_addr, PORT_DOWN, PORT_DOWN),
                                                (p2, y.ports[p2].hw_addr, PORT_DOWN, PORT_DOWN)}}
    assert link_state(lab, 1) == link_state(lab, 2) == "down" and link_state(lab, 5) == "up"


@pytest.mark.parametrize("parts", [0, 1], ids=["whole-replies", "one-entry-per-part"])
@pytest.mark.parametrize("change", ["carrier-lost", "port-added", "port-removed", "carrier-lost-before-the-port-reply"])
def test_a_port_change_racing_a_resync_is_not_lost(make_lab, mode, change, parts):
    """A PortStatus that arrives after the port list but before the flows is newer than that list
    (regression: it used to be dropped as 'superseded by the sync in flight'); one that arrives
    before the port list is superseded by it."""
    lab = make_lab(mode, parts=parts)
    x = lab.bridge_switch("VM1", "VM2")
    y = lab.bridge_switch("VM2", "VM1")
    port = T.link(1).ofport
    hw = x.ports[port].hw_addr
    lab.disconnect(x.dpid)
    lab.pump()
    if change == "port-added":
        x.remove_port(port)
    dp = lab.connect(x.dpid)

    def after(msg):                    # the switch answers the port request, then the port changes
        if isinstance(msg, parser.OFPPortDescStatsRequest):
            if change == "port-added":
                x.add_port(port, hw, name=T.link_port_name(1))
            elif change == "port-removed":
                x.remove_port(port)
            else:
                x.set_link(port, False)
            lab.collect(x)
    if change == "carrier-lost-before-the-port-reply":
        x.set_link(port, False)        # reported before the port list, which already shows it
        lab.collect(x)
    else:
        dp.after_reply = after
    mark = lab.mark()
    lab.pump()
    present = {e.cookie for e in x.flows}
    if change == "port-added":
        assert link_cookie(1) in present, "link 1's port is there but has no flows"
        assert crosses(lab, 1, "VM1") is True and link_state(lab, 1) == "up"
        assert port_mods(lab, mark) == {}
    elif change == "port-removed":
        assert link_cookie(1) not in present, "link 1's port is gone but its flows stay"
        assert y.ports[port].config & PORT_DOWN and link_state(lab, 1) == "down"
    else:
        assert y.ports[port].config & PORT_DOWN, "link 1's router on VM1 is gone but VM2's still has carrier"
        assert link_state(lab, 1) == "down"
        assert port_mods(lab, mark) == {"VM2>VM1": {(port, y.ports[port].hw_addr, PORT_DOWN, PORT_DOWN)}}
        assert link_cookie(1) in present
    assert link_state(lab, 2) == link_state(lab, 5) == "up"


# ---- port events through the app ----------------------------------------------------------------

@pytest.mark.parametrize("lid,server", SIDES)
def test_losing_carrier_holds_the_peer_port_down_and_its_return_releases_it(lab, mode, lid, server):
    near, far, nsw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    hw = fsw.ports[port].hw_addr
    assert hw != nsw.ports[port].hw_addr
    mark = lab.mark()
    lab.carrier(server, lid, False)
    assert port_mods(lab, mark) == {lab.label(fsw): {(port, hw, PORT_DOWN, PORT_DOWN)}}
    assert [type(m) for m in lab.sent_since(mark)[fsw.dpid]] == [parser.OFPPortMod, parser.OFPBarrierRequest]
    assert flow_mods(lab, mark) == []
    assert fsw.ports[port].config & PORT_DOWN
    assert link_state(lab, lid) == "down"
    assert lab.send(far.server, lid, ipv4(far.mac, near.mac, far.ip, near.ip)) == []
    for other in REMOTE:
        if other != lid:
            assert link_state(lab, other) == "up"
            assert crosses(lab, other, T.link(other).a.server) is True
    mark = lab.mark()
    lab.carrier(server, lid, True)
    assert port_mods(lab, mark) == {lab.label(fsw): {(port, hw, 0, PORT_DOWN)}}
    assert fsw.ports[port].config == 0
    assert link_state(lab, lid) == "up"
    assert crosses(lab, lid, server) is True and crosses(lab, lid, far.server) is True


@pytest.mark.parametrize("server,peer", BRIDGES)
def test_a_tunnel_losing_liveness_holds_every_link_of_its_pair_down(lab, mode, server, peer):
    x, y = lab.bridge_switch(server, peer), lab.bridge_switch(peer, server)
    pair = T.bridge(server, peer).link_ids
    ports = [T.link(lid).ofport for lid in pair]

    def mods(config):
        return {lab.label(sw): {(p, sw.ports[p].hw_addr, config, PORT_DOWN) for p in ports} for sw in (x, y)}
    mark = lab.mark()
    lab.tunnel(server, peer, False)
    assert port_mods(lab, mark) == mods(PORT_DOWN)
    assert flow_mods(lab, mark) == []
    switches = {s["dpid"]: s for s in lab.call(lab.app.switches)}
    assert switches[f"{x.dpid:016x}"]["tunnel_live"] is False
    assert switches[f"{y.dpid:016x}"]["tunnel_live"] is True
    for lid in REMOTE:
        assert link_state(lab, lid) == ("down" if lid in pair else "up"), lid
    mark = lab.mark()
    lab.tunnel(server, peer, True)
    assert port_mods(lab, mark) == mods(0)
    for lid in pair:
        assert link_state(lab, lid) == "up"
        assert crosses(lab, lid, server) is True and crosses(lab, lid, peer) is True


@pytest.mark.parametrize("lid", REMOTE)
def test_an_operator_fails_and_restores_a_link_on_both_sides(lab, mode, lid):
    link = T.link(lid)
    x, y = lab.ends(lid, link.a.server)[2:]
    port = link.ofport
    mark = lab.mark()
    view = lab.call(lab.app.fail_link, lid)
    assert view["state"] == "failed" and view["id"] == lid
    assert port_mods(lab, mark) == {lab.label(sw): {(port, sw.ports[port].hw_addr, PORT_DOWN, PORT_DOWN)}
                                    for sw in (x, y)}
    assert lab.send(link.a.server, lid, ipv4(link.a.mac, link.b.mac, link.a.ip, link.b.ip)) == []
    for other in REMOTE:
        assert link_state(lab, other) == ("failed" if other == lid else "up")
    mark = lab.mark()
    assert lab.call(lab.app.restore_link, lid)["state"] == "up"
    assert port_mods(lab, mark) == {lab.label(sw): {(port, sw.ports[port].hw_addr, 0, PORT_DOWN)} for sw in (x, y)}
    assert crosses(lab, lid, link.a.server) is True and crosses(lab, lid, link.b.server) is True


def test_an_operator_failure_survives_a_controller_restart(lab, mode):
    lid = REMOTE[0]
    link = T.link(lid)
    x, y = lab.ends(lid, link.a.server)[2:]
    lab.call(lab.app.fail_link, lid)
    lab.restart_controller()
    assert link_state(lab, lid) == "failed"
    assert all(sw.ports[link.ofport].config & PORT_DOWN for sw in (x, y))
    assert lab.send(link.a.server, lid, ipv4(link.a.mac, link.b.mac, link.a.ip, link.b.ip)) == []
    lab.call(lab.app.restore_link, lid)
    lab.restart_controller()
    assert link_state(lab, lid) == "up" and crosses(lab, lid, link.a.server) is True


def test_failing_a_local_or_unknown_link_is_refused(lab, mode):
    mark = lab.mark()
    for call in (lab.app.fail_link, lab.app.restore_link):
        with pytest.raises(errors.Conflict, match="local"):      # domain errors: the REST layer
            call(LOCAL[0])                                       # maps them (409, 404)
        for bad in (0, 999):
            with pytest.raises(errors.NotFound):
                call(bad)
    with pytest.raises(errors.NotFound):
        lab.call(lab.app.link, 999)
    rest = make_app(lab.app)
    for method, path, status in (("POST", f"/v1/links/{LOCAL[0]}/fail", 409), ("GET", "/v1/links/999", 404)):
        seen = []
        body = rest({"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_X_MINET": "1",
                     "HTTP_AUTHORIZATION": f"Bearer {lab.app.rest_token}"},
                    lambda st, headers: seen.append(st))
        assert seen[0].startswith(f"{status} ") and b"error" in b"".join(body)
    assert lab.sent_since(mark) == {}


@pytest.mark.parametrize("lid,server", SIDES)
def test_a_removed_port_takes_only_its_links_flows_and_re_adding_it_restores_them(lab, mode, lid, server):
    near, far, nsw, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    before = lab.tables()
    mark = lab.mark()
    hw = lab.remove_port(server, lid)
    after = lab.tables()
    cookie = link_cookie(lid)
    gone = before[nsw.dpid] - after[nsw.dpid]
    assert len(gone) == FLOWS_PER_LINK[mode] and {f[3] for f in gone} == {cookie}
    assert after[nsw.dpid] == {f for f in before[nsw.dpid] if f[3] != cookie}
    assert {d: t for d, t in after.items() if d != nsw.dpid} == {d: t for d, t in before.items() if d != nsw.dpid}
    assert len(flow_mods(lab, mark)) == len(flow_mods(lab, mark, command=ofp.OFPFC_DELETE_STRICT)) == len(gone)
    assert port_mods(lab, mark) == {lab.label(fsw): {(port, fsw.ports[port].hw_addr, PORT_DOWN, PORT_DOWN)}}
    mark = lab.mark()
    lab.add_port(server, lid, hw)
    assert lab.tables() == before
    assert len(flow_mods(lab, mark)) == len(flow_mods(lab, mark, command=ofp.OFPFC_ADD)) == len(gone)
    assert port_mods(lab, mark) == {lab.label(fsw): {(port, fsw.ports[port].hw_addr, 0, PORT_DOWN)}}
    assert crosses(lab, lid, server) is True and crosses(lab, lid, far.server) is True


# ---- robustness ---------------------------------------------------------------------------------

def test_an_unknown_switch_is_left_alone(lab, mode, caplog):
    ours_elsewhere = (MAGIC << 48) | (instance_hash16(T.name) << 32) | (9 << 16) | 1   # no server 9
    other_instance = (MAGIC << 48) | (instance_hash16("other") << 32) | (1 << 16) | 2
    strangers = [FakeSwitch(dpid, {1: "0a:ff:00:00:00:01", 101: "0a:ff:00:00:00:65"}, tunnel_ports=(1,))
                 for dpid in (0x1, ours_elsewhere, other_instance)]
    mark = lab.mark()
    with caplog.at_level(logging.WARNING):
        for sw in strangers:
            lab.add_switch(sw)
            lab.connect(sw.dpid)
            lab.pump()
            sw.set_link(101, False)
            sw.add_port(102, "0a:ff:00:00:00:66")
            lab.pump()
            lab.reconnect(sw.dpid)
    assert all(sw.sent == [] for sw in strangers)
    assert lab.sent_since(mark) == {}
    assert lab.app.extra["unknown_switch"] == 2 * len(strangers)
    assert not set(lab.app.datapaths) & {sw.dpid for sw in strangers}
    assert lab.call(lab.app.health)["connected"] == len(T.bridges)
    warnings = [r for r in caplog.records if "not in topology" in r.getMessage()]
    assert len(warnings) == len(strangers)          # once per switch, not per connection
    assert all(s["connected"] for s in lab.call(lab.app.switches))


def test_ports_the_topology_does_not_know_change_nothing(lab, mode):
    before = lab.tables()
    mark = lab.mark()
    for dpid, bridge in T.bridges.items():
        sw = lab.switches[dpid]
        foreign_link = next(lid for lid in REMOTE if lid not in bridge.link_ids)
        for port in (77, T.link(foreign_link).ofport, 0xFFFFFF00):
            sw.add_port(port, "0a:ee:00:00:%02x:%02x" % (dpid & 0xFF, port & 0xFF))
            lab.pump()
            sw.set_link(port, False)
            lab.pump()
            sw.set_link(port, True)
            lab.pump()
            sw.remove_port(port)
            lab.pump()
        # a status for a port the switch never announced
        desc = parser.OFPPort(port_no=555, hw_addr="0a:ee:00:00:02:2b", name=b"ghost", config=0,
                              state=ofp.OFPPS_LINK_DOWN, curr=0, advertised=0, supported=0, peer=0,
                              curr_speed=0, max_speed=0)
        for reason in (ofp.OFPPR_MODIFY, ofp.OFPPR_DELETE, ofp.OFPPR_ADD):
            lab.message(dpid, port_status_bytes(parser.OFPPortStatus(None, reason=reason, desc=desc)))
    assert lab.sent_since(mark) == {}
    assert lab.tables() == before
    assert all(link_state(lab, lid) == "up" for lid in REMOTE)


def _lldp_frame() -> bytes:
    pkt = os_packet.Packet()
    pkt.add_protocol(os_ethernet.ethernet(dst=os_lldp.LLDP_MAC_NEAREST_BRIDGE, src="02:00:00:00:00:01",
                                          ethertype=ether_types.ETH_TYPE_LLDP))
    pkt.add_protocol(os_lldp.lldp([
        os_lldp.ChassisID(subtype=os_lldp.ChassisID.SUB_LOCALLY_ASSIGNED, chassis_id=b"dpid:0000000000000001"),
        os_lldp.PortID(subtype=os_lldp.PortID.SUB_PORT_COMPONENT, port_id=b"\x00\x01"),
        os_lldp.TTL(ttl=120), os_lldp.End()]))
    pkt.serialize()
    return bytes(pkt.data)


def _ipv4_frame() -> bytes:
    pkt = os_packet.Packet()
    pkt.add_protocol(os_ethernet.ethernet(dst="02:00:00:00:00:02", src="02:00:00:00:00:01"))
    pkt.add_protocol(os_ipv4.ipv4(src="10.0.0.1", dst="10.0.0.2", proto=17))
    pkt.serialize()
    return bytes(pkt.data)


def _arp_frame() -> bytes:
    pkt = os_packet.Packet()
    pkt.add_protocol(os_ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01",
                                          ethertype=ether_types.ETH_TYPE_ARP))
    pkt.add_protocol(os_arp.arp_ip(os_arp.ARP_REQUEST, "02:00:00:00:00:01", "10.0.0.1",
                                   "00:00:00:00:00:00", "10.0.0.2"))
    pkt.serialize()
    return bytes(pkt.data)


def test_garbled_or_unexpected_packet_ins_are_counted_and_never_raise(lab, mode, caplog):
    lab.expected = {"packet_in"}
    rng = random.Random(3)
    frames = [bytes(rng.randrange(256) for _ in range(n)) for n in (1, 13, 14, 60, 333)]
    frames += [b"", _ipv4_frame()[:17], _ipv4_frame()[:20], _arp_frame()[:30], _lldp_frame(), _ipv4_frame(),
               _arp_frame(), b"\xff" * 9000]
    mark = lab.mark()
    n = 0
    with caplog.at_level(logging.WARNING):
        for dpid in T.bridges:
            for data in frames:
                lab.packet_in(dpid, data, in_port=100 + (n % 8), reason=n % 3, table_id=n % 254,
                              cookie=[0, COOKIE_MAGIC | 3, 0xFFFFFFFFFFFFFFFF][n % 3])
                n += 1
            lab.packet_in(dpid, b"\x00" * 64, match=parser.OFPMatch())              # no in_port at all
            lab.packet_in(dpid, b"\x00" * 64, match=parser.OFPMatch(in_port=1, tunnel_id=5, eth_type=0x800))
            n += 2
    assert lab.app.extra["packet_in"] == n and n > 10
    assert lab.app.extra["handler_error"] == 0
    assert lab.sent_since(mark) == {}
    logged = [r for r in caplog.records if "unexpected packet-in" in r.getMessage()]
    assert 1 <= len(logged) <= 3                     # rate-limited: #1, #10 and #100 only
    assert lab.call(lab.app.health)["connected"] == len(T.bridges)


def test_an_error_from_a_switch_is_logged_and_counted(lab, mode, caplog):
    lab.expected = {"error"}
    dpid = T.dpid("VM2", "VM3")
    with caplog.at_level(logging.ERROR):
        lab.error(dpid, ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_TABLE_FULL, b"\x04\x0e\x00\x50" + b"\0" * 60)
        lab.error(dpid, ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_TYPE)
    assert lab.app.extra["error"] == 2 and lab.app.extra["handler_error"] == 0
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"{dpid:016x}" in m and f"type={ofp.OFPET_FLOW_MOD_FAILED} code={ofp.OFPFMFC_TABLE_FULL}" in m
               for m in logged), logged
    metrics = lab.call(lab.app.metrics)
    assert 'minet_controller_messages_total{kind="error"} 2' in metrics.splitlines()


def test_an_experimenter_error_is_logged_readably(lab, mode, caplog):
    """Regression: os-ken leaves msg.code None for an OFPET_EXPERIMENTER error; logging it with
    %d made the record unformattable."""
    lab.expected = {"error"}
    dpid = T.dpid("VM1", "VM2")
    body = struct.pack(ofp.OFP_ERROR_EXPERIMENTER_MSG_PACK_STR, ofp.OFPET_EXPERIMENTER, 7, 0x00002320) + b"x" * 8
    frame = struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, ofp.OFPT_ERROR, 8 + len(body), 0) + body
    with caplog.at_level(logging.ERROR):
        lab.message(dpid, frame)
    assert lab.app.extra["error"] == 1 and lab.app.extra["handler_error"] == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("OpenFlow error" in m and f"type={ofp.OFPET_EXPERIMENTER}" in m for m in messages), messages


def test_a_switch_that_never_answers_does_not_hang_the_api(lab, mode, monkeypatch):
    monkeypatch.setattr(remote_links, "STATS_TIMEOUT", 0.3)
    lid, server = 3, "VM3"
    near, far, nsw, fsw = lab.ends(lid, server)
    for _ in range(4):
        assert crosses(lab, lid, server) is True
    dp = lab.dps[nsw.dpid]
    dp.mute_stats = True
    view = lab.call(lab.app.link, lid)
    assert view["counters"] == {"VM3": None,                                 # no answer: unknown, not 0
                                "VM2": {"packets": 4, "bytes": 4 * 60}}
    assert lab.app.exchanges.waiters == {}                                            # nothing left waiting
    # the answer turns up late: ignored, no resync, nothing sent
    mark = lab.mark()
    syncs = lab.app.core.counters["sync"]
    for xid, body in dp.lost_stats:
        lab.message(nsw.dpid, multipart_reply_bytes(ofp.OFPMP_FLOW, [flow_stats_bytes(s) for s in body], xid, False))
    assert lab.sent_since(mark) == {} and lab.app.core.counters["sync"] == syncs


def test_stats_replies_nobody_asked_for_change_nothing(lab, mode):
    """Replies are matched to requests by xid: an unsolicited or stray one, even while a sync is in
    flight, is never taken for the switch's ports or flows."""
    sw = lab.bridge_switch("VM1", "VM2")
    before = lab.table(sw.dpid)
    tunnel_only = [port_bytes(sw.ports[TUNNEL].desc())]
    mark = lab.mark()
    lab.message(sw.dpid, multipart_reply_bytes(ofp.OFPMP_PORT_DESC, tunnel_only, 12345, True))    # never finished
    lab.message(sw.dpid, multipart_reply_bytes(ofp.OFPMP_PORT_DESC, tunnel_only, 777, False))
    lab.message(sw.dpid, multipart_reply_bytes(ofp.OFPMP_FLOW, [], 778, False))
    assert lab.sent_since(mark) == {}
    lab.disconnect(sw.dpid)
    lab.pump()
    dp = lab.connect(sw.dpid)

    def stray(msg):                    # a stray reply overtakes the real one of each request
        mp_type = ofp.OFPMP_PORT_DESC if isinstance(msg, parser.OFPPortDescStatsRequest) else ofp.OFPMP_FLOW
        lab.queue.appendleft((dp, multipart_reply_bytes(mp_type, tunnel_only if mp_type == ofp.OFPMP_PORT_DESC
                                                        else [], msg.xid ^ 0x5A5A, False)))
    dp.after_reply = stray
    mark = lab.mark()
    lab.pump()
    assert [type(m) for m in lab.sent_since(mark)[sw.dpid]] == [parser.OFPPortDescStatsRequest,
                                                               parser.OFPFlowStatsRequest]
    assert lab.table(sw.dpid) == before and lab.sent_since(mark).keys() == {sw.dpid}
    assert all(link_state(lab, lid) == "up" for lid in REMOTE)


# ---- REST ----------------------------------------------------------------------------------------

def test_rest_health_switches_and_errors(lab, mode):
    health = lab.get_json("/healthz")
    assert health.pop("openflow")["listener"] in ("starting", "serving")   # tests/unit/test_hardening_*
    assert health == {"status": "ok", "topology": "app", "switches": 6, "connected": 6, "synced": 6}
    switches = lab.get_json("/v1/switches")["switches"]
    assert [s["dpid"] for s in switches] == [f"{d:016x}" for d in T.bridges]
    for s in switches:
        dpid = int(s["dpid"], 16)
        bridge = T.bridges[dpid]
        assert (s["name"], s["server"], s["peer"]) == (bridge.name, bridge.server, bridge.peer)
        assert s["connected"] is s["synced"] is s["tunnel_live"] is True
        assert s["links"] == len(bridge.link_ids) and s["flows"] == len(lab.switches[dpid].flows)
    lab.disconnect(T.dpid("VM3", "VM1"))
    lab.pump()
    assert lab.get_json("/healthz")["connected"] == 5
    gone = {s["dpid"]: s for s in lab.get_json("/v1/switches")["switches"]}[f"{T.dpid('VM3', 'VM1'):016x}"]
    assert gone["connected"] is False
    for method, path, status in [("POST", "/healthz", 405), ("GET", "/v1/links/1/fail", 405),
                                 ("PUT", "/v1/links/1/restore", 405), ("DELETE", "/v1/links", 405),
                                 ("POST", "/v1/links/1", 405), ("GET", "/nope", 404), ("GET", "/v1/links/999", 404),
                                 ("GET", "/v1/links/abc", 404), ("POST", "/v1/links/999/fail", 404),
                                 ("POST", f"/v1/links/{LOCAL[0]}/fail", 409), ("GET", "/", 404)]:
        code, headers, body = lab.wsgi(method, path)
        assert code == status, (method, path, body)
        assert headers["Content-Type"] == "application/json" and b'"error"' in body


def _counters(lab):
    return {link["id"]: link.get("counters") for link in lab.get_json("/v1/links")["links"]}


def test_rest_links_show_state_and_counters_that_grow(lab, mode):
    links = {link["id"]: link for link in lab.get_json("/v1/links")["links"]}
    assert sorted(links) == [link.id for link in T.links]
    for link in T.links:
        view = links[link.id]
        assert view["remote"] is link.remote and view["rel"] == link.rel
        assert (view["a"]["ip"], view["a"]["mac"], view["b"]["ip6"]) == (link.a.ip, link.a.mac, link.b.ip6)
        if link.remote:
            assert view["state"] == "up" and view["tunnel_live"] is True
            assert view["counters"] == {s: {"packets": 0, "bytes": 0} for s in link.servers()}
        else:
            assert view["state"] == "up" and view["tunnel_live"] is None and "counters" not in view
    lid = 5
    near, far, _, _ = lab.ends(lid, "VM1")
    ping = ipv4(near.mac, far.mac, near.ip, far.ip)
    back = ipv4(far.mac, near.mac, far.ip, near.ip)
    for _ in range(3):
        lab.send("VM1", lid, ping)
    for _ in range(2):
        lab.send("VM2", lid, back)
    lab.send("VM1", lid, arp_request(near.mac, near.ip, far.ip))
    counters = _counters(lab)
    # VM1: 3 in, 2 out, 1 ARP answered; VM2: 3 out, 2 in
    assert counters[lid] == {"VM1": {"packets": 6, "bytes": 5 * ping.size + 60},
                             "VM2": {"packets": 5, "bytes": 5 * ping.size}}
    assert all(c == {s: {"packets": 0, "bytes": 0} for s in c} for i, c in counters.items() if c and i != lid)
    assert lab.get_json(f"/v1/links/{lid}")["counters"] == counters[lid]
    lab.send("VM1", lid, ping)
    assert _counters(lab)[lid]["VM1"]["packets"] == 7


_SAMPLE = re.compile(r'^([a-z_]+)\{([^}]*)\} (\d+)$')


def _metrics(lab):
    code, headers, body = lab.wsgi("GET", "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    samples, typed = {}, set()
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        m = _SAMPLE.match(line)
        assert m, line
        name, labels, value = m.groups()
        assert name in typed, f"{name} has no # TYPE line"
        key = (name, tuple(sorted(tuple(kv.split("=", 1)) for kv in labels.split(","))))
        assert key not in samples, line
        samples[key] = int(value)
    return samples


def test_rest_metrics_agree_with_the_switches(lab, mode):
    lid = 6
    near, far, _, _ = lab.ends(lid, "VM3")
    for _ in range(4):
        lab.send("VM3", lid, ipv6(near.mac, far.mac, near.ip6, far.ip6))
    samples = _metrics(lab)

    def get(name, **labels):
        return samples[(name, tuple(sorted((k, f'"{v}"') for k, v in labels.items())))]
    for dpid, bridge in T.bridges.items():
        assert get("minet_switch_connected", dpid=f"{dpid:016x}", server=bridge.server, peer=bridge.peer) == 1
        assert get("minet_tunnel_live", server=bridge.server, peer=bridge.peer) == 1
    for link in T.remote_links:
        assert get("minet_link_up", link=link.id) == 1 and get("minet_link_failed", link=link.id) == 0
    assert not [k for k in samples if k[0] == "minet_link_up" and ("link", f'"{LOCAL[0]}"') in k[1]]
    size = ipv6(near.mac, far.mac, near.ip6, far.ip6).size
    assert get("minet_link_packets_total", link=lid, server="VM3") == 4
    assert get("minet_link_packets_total", link=lid, server="VM2") == 4
    assert get("minet_link_bytes_total", link=lid, server="VM2") == 4 * size
    flowmods = sum(1 for sw in lab.switches.values() for m in sw.sent if isinstance(m, parser.OFPFlowMod))
    assert get("minet_controller_messages_total", kind="sent_FlowMod") == flowmods
    assert get("minet_controller_messages_total", kind="sync") == len(T.bridges)
    assert get("minet_controller_messages_total", kind="flow_add") == flowmods
    code, _, body = lab.wsgi("POST", f"/v1/links/{lid}/fail")
    assert code == 200
    samples = _metrics(lab)
    assert get("minet_link_up", link=lid) == 0 and get("minet_link_failed", link=lid) == 1
    assert get("minet_controller_messages_total", kind="port_mod") == 2


def test_rest_fail_and_restore_reach_both_routers(lab, mode):
    lid = 7
    link = T.link(lid)
    x, y = lab.ends(lid, link.a.server)[2:]
    port = link.ofport
    mark = lab.mark()
    code, _, body = lab.wsgi("POST", f"/v1/links/{lid}/fail")
    assert code == 200
    assert json.loads(body)["state"] == "failed"
    assert port_mods(lab, mark) == {lab.label(sw): {(port, sw.ports[port].hw_addr, PORT_DOWN, PORT_DOWN)}
                                    for sw in (x, y)}
    assert lab.get_json(f"/v1/links/{lid}")["state"] == "failed"
    code, _, body = lab.wsgi("POST", f"/v1/links/{lid}/fail")      # again: nothing more to do
    assert code == 200 and port_mods(lab, mark) == {lab.label(sw): {(port, sw.ports[port].hw_addr, PORT_DOWN,
                                                                     PORT_DOWN)} for sw in (x, y)}
    mark = lab.mark()
    code, _, body = lab.wsgi("POST", f"/v1/links/{lid}/restore/")
    assert code == 200 and json.loads(body)["state"] == "up"
    assert port_mods(lab, mark) == {lab.label(sw): {(port, sw.ports[port].hw_addr, 0, PORT_DOWN)} for sw in (x, y)}
    assert crosses(lab, lid, link.a.server) is True


def test_a_post_without_the_csrf_header_is_403_and_changes_nothing(lab, mode):
    """A cross-site page can send a body-less (or form/text) POST but not a custom header: every
    state-changing POST without X-Minet: 1 is refused, and the link is left as it was."""
    lid = 7
    mark = lab.mark()
    for path in (f"/v1/links/{lid}/fail", f"/v1/links/{lid}/restore", "/v1/reload"):
        for body in (b"", b"a=1"):
            code, _, answer = lab.wsgi("POST", path, body, csrf=False)
            assert code == 403 and "X-Minet" in json.loads(answer)["error"], (path, code, answer)
    assert lab.get_json(f"/v1/links/{lid}")["state"] == "up"
    assert port_mods(lab, mark) == {}
    code, _, body = lab.wsgi("POST", f"/v1/links/{lid}/fail")           # our clients send it
    assert code == 200 and json.loads(body)["state"] == "failed"
    assert lab.get_json(f"/v1/links/{lid}")["state"] == "failed"
    assert lab.wsgi("POST", f"/v1/links/{lid}/restore")[0] == 200
    assert lab.get_json(f"/v1/links/{lid}")["state"] == "up"


def test_multipart_replies_in_many_parts_sync_and_count(make_lab, mode):
    lab = make_lab(mode, parts=1)
    for dpid, bridge in T.bridges.items():
        assert len(lab.switches[dpid].flows) == 2 + FLOWS_PER_LINK[mode] * len(bridge.link_ids)
    assert crosses(lab, 1, "VM2") is True
    assert _counters(lab)[1]["VM2"]["packets"] == 1
    assert lab.app.exchanges.parts == {}
