"""IXP members on other servers than their IXP: IXP segments through the real app and fake switches.

A member on another server reaches the peering LAN over the remote bridges of its server pair, as
an "IXP segment": its own OpenFlow port on both bridges, its own tunnel key / DSCP mark, proxy ARP
for every address of the LAN on the member's side (route server and every other member) and for
the member's address on the IXP's side. Checked exhaustively, in both isolation modes, against
every other link and segment: a segment's frames leave at its own far port only, nobody else's
frames (whatever mark or key they carry) leave at a segment's port, ARP never crosses a tunnel.
"""
import pytest

from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.topology import parse_topology
from minet_sdn.topology.model import ixp_mac, link_cookie

from tests.fakeswitch import ETH_MPLS, arp_reply, arp_request, ipv4, ipv6, ipv6_ns, raw_frame
from tests.unit.app_harness import MODES, Lab, carried, inject_from_tunnel, shared_labs, three_servers

TOPOLOGY = three_servers("seg", """\
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
  3: {server: VM2, routers: [C]}
  4: {server: VM3, routers: [D]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
  - {a: 2.B, b: 4.D, rel: peer}
  - {a: 3.C, b: 1.A, rel: customer}
ixps:
  100: {server: VM1, members: [1.A, 2.B, 3.C, {router: 4.D, announce_to: [1]}]}
  200: {server: VM3, members: [2.B, 4.D]}
""")

T = parse_topology(TOPOLOGY % "key", "seg.yaml")
SEGMENTS = [s.id for s in T.ixp_segments]
TUNNELLED = [l.id for l in T.tunnelled]
SIDES = [(l.id, server) for l in T.tunnelled for server in l.servers()]
SEG_SIDES = [(s.id, server) for s in T.ixp_segments for server in s.servers()]
BRIDGES = [(b.server, b.peer) for b in T.bridges.values()]


def test_the_segments_are_what_the_topology_implies():
    # IXP 100 on VM1: 2.B, 3.C (VM2) and 4.D (VM3) are apart; IXP 200 on VM3: 2.B is apart
    assert [(s.id, s.ixp, s.a.router, s.a.server, s.b.server) for s in T.ixp_segments] == [
        (4, 100, "2.B", "VM2", "VM1"), (5, 100, "3.C", "VM2", "VM1"), (6, 100, "4.D", "VM3", "VM1"),
        (7, 200, "2.B", "VM2", "VM3")]
    x = T.ixps[100]
    seg = T.ixp_segment(100, "3.C")
    assert seg.id == 5 and T.ixp_segment(100, "1.A") is None and T.ixp_segment(200, "4.D") is None
    assert (seg.a.ip, seg.a.mac, seg.a.ifname) == ("198.18.0.4", ixp_mac(1, 3), "ixp100")
    assert (seg.b.router, seg.b.ip, seg.b.mac, seg.b.ifname) == ("ixp100", x.route_server_ip, ixp_mac(1, 0), "m3")
    # the member's side answers for everyone else on the LAN, never for itself
    assert seg.lan == ((x.route_server_ip, ixp_mac(1, 0)), ("198.18.0.2", ixp_mac(1, 1)),
                       ("198.18.0.3", ixp_mac(1, 2)), ("198.18.0.5", ixp_mac(1, 4)))
    assert T.ixp_segment(200, "2.B").lan == (("198.18.1.1", ixp_mac(2, 0)), ("198.18.1.3", ixp_mac(2, 2)))
    # segments ride the bridges of their pair, after the links, with marks unique per pair
    assert T.bridge("VM1", "VM2").link_ids == (1, 3, 4, 5)
    assert T.bridge("VM3", "VM1").link_ids == (6,) and T.bridge("VM2", "VM3").link_ids == (2, 7)
    assert [T.link_marks[i] for i in (1, 3, 4, 5)] == [1, 2, 3, 4]
    assert T.link(6).ofport == 106 and T.link(6).cookie == link_cookie(6)
    assert len(T.remote_links) == 3 and len(T.links) == 3       # inter-AS links are unchanged


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_labs(tmp_path_factory, TOPOLOGY)


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def lan_macs(seg):
    return [mac for _, mac in seg.lan]


@pytest.mark.parametrize("sid,server", SEG_SIDES)
def test_a_segments_frames_come_out_at_its_far_port_only(shared, mode, sid, server):
    lab = shared(mode)
    seg = T.link(sid)
    near, far, _, fsw = lab.ends(sid, server)
    # the member talks to everyone on the LAN; the IXP's side sends to the member only
    targets = seg.lan if server == seg.a.server else ((seg.a.ip, seg.a.mac),)
    for ip, mac in targets:
        for pkt in (ipv4(near.mac, mac, near.ip, ip, dscp=46), ipv4(near.mac, mac, near.ip, ip, dscp=48, proto=6),
                    ipv4(near.mac, "ff:ff:ff:ff:ff:ff", near.ip, "255.255.255.255")):
            assert lab.where(lab.send(server, sid, pkt)) == [(lab.label(fsw), seg.ofport, carried(mode, pkt))], pkt
    # IPv6 (the LAN is dual stack): carried like a link's, neighbour solicitations included
    assert near.ip6 and far.ip6
    for pkt in (ipv6(near.mac, far.mac, near.ip6, far.ip6, dscp=10), ipv6_ns(near.mac, near.ip6, far.ip6)):
        assert lab.where(lab.send(server, sid, pkt)) == [(lab.label(fsw), seg.ofport, carried(mode, pkt))], pkt
    mpls = raw_frame(near.mac, far.mac, ETH_MPLS)
    assert lab.where(lab.send(server, sid, mpls)) == ([(lab.label(fsw), seg.ofport, mpls)] if mode == "key" else [])
    assert lab.problems() == []


@pytest.mark.parametrize("sid,server", SEG_SIDES)
def test_proxy_arp_on_a_segment_answers_every_lan_address_and_nothing_else(shared, mode, sid, server):
    lab = shared(mode)
    seg = T.link(sid)
    near, far, nsw, _ = lab.ends(sid, server)
    answered = dict(seg.lan) if server == seg.a.server else {seg.a.ip: seg.a.mac}
    for ip, mac in answered.items():
        reply = arp_reply(mac, ip, near.mac, near.ip)
        request = arp_request(near.mac, near.ip, ip)
        assert lab.where(lab.send(server, sid, request)) == [(lab.label(nsw), seg.ofport, reply)], ip
        assert lab.where(lab.send(server, sid, request.replace(eth_dst=mac))) == [
            (lab.label(nsw), seg.ofport, reply)], ip
    # not its own address, not another IXP's LAN, not any link's address, not the underlay
    others = {near.ip, "198.18.0.254", "192.0.2.1", "10.0.0.1"}
    for link in T.tunnelled:
        for end in (link.a, link.b):
            if end.ip not in answered:
                others.add(end.ip)
    for other in sorted(others - set(answered)):
        assert lab.send(server, sid, arp_request(near.mac, near.ip, other)) == [], other
    assert lab.send(server, sid, arp_reply(near.mac, near.ip, far.mac, far.ip)) == []
    assert lab.problems() == []


@pytest.mark.parametrize("other", TUNNELLED)
@pytest.mark.parametrize("lid,server", SIDES)
def test_frames_marked_for_another_link_or_segment_stay_on_their_own(shared, mode, lid, server, other):
    """Every link and segment against every other: a forged DSCP mark or a preset tunnel key
    never moves a frame onto someone else's port."""
    if lid not in SEGMENTS and other not in SEGMENTS:
        return              # link against link: test_remote_links_app.py covers it
    lab = shared(mode)
    near, far, _, fsw = lab.ends(lid, server)
    port = T.link(lid).ofport
    mark = T.link_marks[other]
    theirs = T.link(other)
    expect = lambda pkt: [(lab.label(fsw), port, carried(mode, pkt))]  # noqa: E731
    pkts = [ipv4(near.mac, far.mac, near.ip, far.ip, dscp=mark)]
    pkts += [ipv4(near.mac, end.mac, near.ip, end.ip, dscp=mark) for end in (theirs.a, theirs.b)]
    for pkt in pkts:
        assert lab.where(lab.send(server, lid, pkt)) == expect(pkt), pkt
        assert lab.where(lab.send(server, lid, pkt, preset_tunnel_id=other)) == expect(pkt), pkt
    if other != lid:
        for end in (theirs.a, theirs.b):
            request = arp_request(near.mac, near.ip, end.ip)
            got = lab.send(server, lid, request)
            # the only ARP answered is one this side's own proxy answers (a LAN address, same IXP)
            own = T.link(lid)
            answered = dict(own.lan) if own.ixp is not None and server == own.a.server else {far.ip: far.mac}
            if end.ip in answered:
                assert lab.where(got) == [(lab.label(lab.ends(lid, server)[2]), port,
                                           arp_reply(answered[end.ip], end.ip, near.mac, near.ip))]
            else:
                assert got == [], end.ip
    assert lab.problems() == []


@pytest.mark.parametrize("other", TUNNELLED)
@pytest.mark.parametrize("server,peer", BRIDGES)
def test_a_frame_from_the_tunnel_reaches_only_the_segment_or_link_its_mark_names(shared, mode, server, peer, other):
    lab = shared(mode)
    theirs = T.link(other)
    got, want, _ = inject_from_tunnel(lab, mode, server, peer, other)
    assert got == want
    # ARP from the tunnel goes nowhere, even carrying a segment's key
    arp = arp_request(theirs.a.mac, theirs.a.ip, theirs.b.ip).replace(tunnel_id=other)
    assert lab.inject(server, peer, arp) == []
    assert lab.problems() == []


def test_every_bridge_holds_exactly_its_links_and_segments_flows_and_none_floods(shared, mode):
    lab = shared(mode)
    per_link = {"key": 2, "tos": 4}[mode]          # without the ARP responders
    for dpid, bridge in T.bridges.items():
        flows = lab.switches[dpid].flows
        arp = sum(len(T.link(lid).lan) if T.link(lid).ixp is not None and T.link(lid).a.server == bridge.server
                  else 1 for lid in bridge.link_ids)
        assert len(flows) == 2 + arp + per_link * len(bridge.link_ids), bridge.name
        assert {e.cookie for e in flows} == {link_cookie(0)} | {link_cookie(lid) for lid in bridge.link_ids}
        for entry in flows:
            assert not entry.outputs_to(ofp.OFPP_CONTROLLER) and not entry.outputs_to(ofp.OFPP_FLOOD)
            assert not entry.outputs_to(ofp.OFPP_NORMAL), entry
    assert lab.app.extra["packet_in"] == 0


def test_a_segment_fails_and_recovers_like_a_link(tmp_path):
    """The member's carrier loss holds the IXP's side down (the route server's session drops at
    once) and the other way round; an operator can fail a segment too."""
    lab = Lab(tmp_path, TOPOLOGY % "key")
    sid = T.ixp_segment(100, "4.D").id
    member_sw, ixp_sw = lab.switch_of("VM3", sid), lab.switch_of("VM1", sid)
    port = T.link(sid).ofport
    lab.carrier("VM3", sid, False)
    assert lab.call(lab.app.link, sid)["state"] == "down"
    assert ixp_sw.ports[port].config & ofp.OFPPC_PORT_DOWN and not member_sw.ports[port].config & ofp.OFPPC_PORT_DOWN
    lab.carrier("VM3", sid, True)
    assert lab.call(lab.app.link, sid)["state"] == "up" and not ixp_sw.ports[port].config & ofp.OFPPC_PORT_DOWN
    lab.call(lab.app.fail_link, sid)
    assert member_sw.ports[port].config & ofp.OFPPC_PORT_DOWN and ixp_sw.ports[port].config & ofp.OFPPC_PORT_DOWN
    view = lab.call(lab.app.link, sid)
    assert view["state"] == "failed" and view["rel"] == "ixp" and view["a"]["router"] == "4.D"
    lab.call(lab.app.restore_link, sid)
    assert not member_sw.ports[port].config & ofp.OFPPC_PORT_DOWN
    # other links were never touched
    for lid in TUNNELLED:
        if lid != sid:
            assert lab.call(lab.app.link, lid)["state"] == "up"
    assert lab.problems() == []


def test_a_failed_segment_stays_failed_across_a_restart_and_follows_its_member_on_reload(tmp_path):
    lab = Lab(tmp_path, TOPOLOGY % "key")
    sid = T.ixp_segment(100, "3.C").id
    lab.call(lab.app.fail_link, sid)
    lab.restart_controller()
    assert lab.call(lab.app.link, sid)["state"] == "failed"
    # a topology with one more link renumbers the segments; the failure follows (3.C, ixp100)
    from minet_sdn.core.fabric import FabricCore
    from minet_sdn.topology import parse_topology as parse
    core = FabricCore(T, failed=[sid])
    bigger = parse((TOPOLOGY % "key").replace("ixps:", "  - {a: 1.A, b: 4.D, rel: peer}\nixps:"), "seg.yaml")
    core.reload(bigger, now=1.0)
    assert core.failed == {bigger.ixp_segment(100, "3.C").id} and bigger.ixp_segment(100, "3.C").id == sid + 1
    assert lab.problems() == []


def test_rest_lists_segments_after_the_links_and_metrics_count_them(tmp_path):
    lab = Lab(tmp_path, TOPOLOGY % "key")
    links = lab.get_json("/v1/links")["links"]
    assert [l["id"] for l in links] == [1, 2, 3] + SEGMENTS
    seg = {l["id"]: l for l in links}[6]
    assert (seg["rel"], seg["ixp"], seg["a"]["router"], seg["b"]["router"], seg["remote"]) == ("ixp", 100, "4.D",
                                                                                               "ixp100", True)
    assert seg["state"] == "up" and set(seg["counters"]) == {"VM3", "VM1"}
    assert "ixp" not in links[0]
    from minet_sdn.cli.main import _check_link_view
    assert all(_check_link_view(l) for l in links)            # `minet link list` takes them
    lab.call(lab.app.fail_link, 6)
    status, _, data = lab.wsgi("GET", "/metrics")
    text = data.decode()
    assert status == 200
    assert 'minet_link_failed{link="6"} 1' in text and 'minet_link_up{link="7"} 1' in text
    assert lab.problems() == []
