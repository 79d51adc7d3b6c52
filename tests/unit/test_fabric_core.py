"""The pure core: what it sends on sync, port events, BFD liveness and operator actions."""
import pytest

from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import ofmsg
from minet_sdn.core.fabric import (CARRIER_GRACE, OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY, OFPPS_LINK_DOWN,
                                   OFPPS_LIVE, OFPPC_PORT_DOWN, FabricCore, PortInfo)
from minet_sdn.core.flows import Flow, bridge_flows, bridge_table
from minet_sdn.topology import parse_topology

from tests.unit.app_harness import three_servers

TOPO = three_servers("t", """\
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM2, routers: [C]}
  3: {server: VM3, routers: [D]}
  4: {server: VM2, routers: [E]}
links:
  - {a: 1.A, b: 2.C, rel: peer}
  - {a: 1.B, b: 2.C, rel: provider}
  - {a: 2.C, b: 3.D, rel: customer}
  - {a: 2.C, b: 4.E, rel: peer}
""")


def topo(mode="key"):
    return parse_topology(TOPO % mode, "t.yaml")


def hw(dpid, port):
    return "aa:%02x:00:00:%02x:%02x" % (dpid & 0xFF, (port >> 8) & 0xFF, port & 0xFF)


def ports_of(t, dpid, live=True, down=()):
    b = t.bridges[dpid]
    out = [PortInfo(1, b.tunnel_port, hw(dpid, 1), 0, OFPPS_LIVE if live else 0)]
    for lid in b.link_ids:
        port = t.link(lid).ofport
        state = OFPPS_LINK_DOWN if lid in down else OFPPS_LIVE
        out.append(PortInfo(port, t.link_port_name(lid), hw(dpid, port), 0, state))
    return out


def connect_all(core, t, now=0.0):
    for dpid in t.bridges:
        core.connected(dpid, now)
        core.synced(dpid, ports_of(t, dpid), [], now)


def running_core(mode="key"):
    """A core whose bridges are all connected and synced (every port up, empty tables)."""
    t = topo(mode)
    core = FabricCore(t)
    connect_all(core, t)
    return t, core


def pair(t, x="VM1", y="VM2"):
    """The two remote bridges of a server pair: x's towards y, y's towards x."""
    return dp(t, x, y), dp(t, y, x)


def resyncing():
    """A core that has just met VM1's bridge towards VM2 (connected, table not read yet): the
    topology, the core, the bridge's dpid and the flows it should hold."""
    t = topo()
    core = FabricCore(t)
    d = dp(t, "VM1", "VM2")
    core.connected(d, 0)
    return t, core, d, wanted_flows(t, d)


def wanted_flows(t, d):
    """What bridge `d` should hold with every one of its ports present."""
    return list(bridge_flows(t, t.bridges[d], [p.port_no for p in ports_of(t, d)]).values())


def port_mods(out):
    """{(dpid, port): down?} of the PortMods in an output."""
    return {(dpid, m.port_no): bool(m.config & ofp.OFPPC_PORT_DOWN)
            for dpid, msgs in out.items() for m in msgs if isinstance(m, parser.OFPPortMod)}


def flow_mods(out, command=None):
    return [m for msgs in out.values() for m in msgs
            if isinstance(m, parser.OFPFlowMod) and (command is None or m.command == command)]


def dp(t, x, y):
    return t.dpid(x, y)


@pytest.mark.parametrize("mode,per_link", [("key", 3), ("tos", 5)])
def test_first_sync_installs_every_flow_then_a_barrier(mode, per_link):
    t = topo(mode)
    core = FabricCore(t)
    d = dp(t, "VM1", "VM2")
    out = core.connected(d, 0)
    assert list(out) == []                       # the shape of every handler: {dpid: [messages]}...
    assert list(out.syncs) == [d]                # ...and the switches to read again, typed apart
    assert [type(r) for r in out.syncs[d]] == [parser.OFPPortDescStatsRequest, parser.OFPFlowStatsRequest]
    out = core.synced(d, ports_of(t, d), [], 0)
    adds = flow_mods(out, ofp.OFPFC_ADD)
    assert len(adds) == 2 + per_link * 2          # two bridge-wide flows + the pair's two links
    assert isinstance(out[d][-1], parser.OFPBarrierRequest)
    assert all(m.cookie >> 48 == 0x6D6E for m in adds)
    assert {m.cookie & 0xFFFFFFFF for m in adds} == {0, 1, 2}


def test_resync_with_matching_flows_sends_nothing():
    t, core, d, flows = resyncing()
    assert core.synced(d, ports_of(t, d), flows, 0) == {}


def test_resync_with_a_stale_and_a_missing_flow_sends_one_delete_and_one_add():
    t, core, d, flows = resyncing()
    missing = flows.pop(3)
    stale = Flow.make(100, {"in_port": 4242}, (("output", 1),), 0x6D6E000000000063)
    out = core.synced(d, ports_of(t, d), flows + [stale], 0)
    deletes = flow_mods(out, ofp.OFPFC_DELETE_STRICT)
    adds = flow_mods(out, ofp.OFPFC_ADD)
    assert len(deletes) == 1 and len(adds) == 1 and len(flow_mods(out)) == 2
    assert dict(deletes[0].match.items()) == {"in_port": 4242}
    assert adds[0].priority == missing.priority and dict(adds[0].match.items()) == dict(missing.match)
    assert isinstance(out[d][-1], parser.OFPBarrierRequest)


def test_a_read_of_the_right_size_is_not_taken_for_the_right_table():
    """The no-op check counts distinct flows: one flow read twice in place of a missing one (a
    confused or hostile switch), or one changed in place, still gets the missing flow added."""
    t, core, d, flows = resyncing()
    out = core.synced(d, ports_of(t, d), flows[:-1] + [flows[0]], 0)
    adds = flow_mods(out, ofp.OFPFC_ADD)
    assert len(adds) == 1 and dict(adds[0].match.items()) == dict(flows[-1].match)
    core.connected(d, 0)
    last = flows[-1]
    out = core.synced(d, ports_of(t, d), flows[:-1] + [last._replace(cookie=last.cookie ^ 1)], 0)
    assert len(flow_mods(out, ofp.OFPFC_ADD)) == 1 and flow_mods(out, ofp.OFPFC_ADD)[0].cookie == last.cookie


def test_a_foreign_flow_is_removed_and_a_changed_flow_replaced():
    t, core, d, flows = resyncing()
    normal = Flow.make(5, {}, (("output", 0xFFFFFFFA),), 0)            # someone's NORMAL flow
    changed = flows[0]
    tampered = Flow(changed.priority, changed.match, (("output", 7),), changed.cookie)
    out = core.synced(d, ports_of(t, d), [tampered, normal] + flows[1:], 0)
    assert len(flow_mods(out, ofp.OFPFC_DELETE_STRICT)) == 1
    assert len(flow_mods(out, ofp.OFPFC_ADD)) == 1


def test_router_port_down_holds_the_far_port_down_and_restores_it():
    t, core = running_core()
    x, y = pair(t)
    port = t.link(1).ofport
    out = core.port_status(x, OFPPR_MODIFY, PortInfo(port, "l1", hw(x, port), 0, OFPPS_LINK_DOWN), 1.0)
    assert port_mods(out) == {(y, port): True}
    pm = next(m for m in out[y] if isinstance(m, parser.OFPPortMod))
    assert pm.hw_addr == hw(y, port) and pm.mask == ofp.OFPPC_PORT_DOWN
    assert core.link_state(t.link(1)) == "down" and core.link_state(t.link(2)) == "up"
    # the forced port reports itself down; that must not be read as its router going away
    out = core.port_status(y, OFPPR_MODIFY, PortInfo(port, "l1", hw(y, port), OFPPC_PORT_DOWN, OFPPS_LINK_DOWN), 1.1)
    assert port_mods(out) == {}
    out = core.port_status(x, OFPPR_MODIFY, PortInfo(port, "l1", hw(x, port), 0, OFPPS_LIVE), 2.0)
    assert port_mods(out) == {(y, port): False}
    assert core.link_state(t.link(1)) == "up"


def test_released_port_blip_is_not_taken_for_a_router_failure_within_grace():
    t, core = running_core()
    x, y = pair(t)
    port = t.link(1).ofport
    core.fail_link(1, 1.0)
    core.port_status(y, OFPPR_MODIFY, PortInfo(port, "l1", hw(y, port), OFPPC_PORT_DOWN, OFPPS_LINK_DOWN), 1.0)
    core.port_status(x, OFPPR_MODIFY, PortInfo(port, "l1", hw(x, port), OFPPC_PORT_DOWN, OFPPS_LINK_DOWN), 1.0)
    out = core.restore_link(1, 2.0)
    assert port_mods(out) == {(x, port): False, (y, port): False}
    # carrier is not back yet when the switch reports the new config
    out = core.port_status(y, OFPPR_MODIFY, PortInfo(port, "l1", hw(y, port), 0, OFPPS_LINK_DOWN), 2.01)
    assert port_mods(out) == {}
    assert core.link_state(t.link(1)) == "up"
    # ...but if it never comes back, the grace period ends and the far side is held down
    assert core.tick(2.0 + CARRIER_GRACE / 2) == {}
    out = core.tick(2.0 + CARRIER_GRACE + 0.01)
    assert port_mods(out) == {(x, port): True}


def test_two_dead_sides_do_not_hold_each_other_down():
    t, core = running_core()
    x, y = pair(t)
    port = t.link(2).ofport
    down = lambda d, cfg=0: PortInfo(port, "l2", hw(d, port), cfg, OFPPS_LINK_DOWN)  # noqa: E731
    up = lambda d: PortInfo(port, "l2", hw(d, port), 0, OFPPS_LIVE)  # noqa: E731
    assert port_mods(core.port_status(x, OFPPR_MODIFY, down(x), 1)) == {(y, port): True}
    core.port_status(y, OFPPR_MODIFY, down(y, OFPPC_PORT_DOWN), 1.01)
    # X's router returns: release Y, which now shows its own router is gone too
    assert port_mods(core.port_status(x, OFPPR_MODIFY, up(x), 2)) == {(y, port): False}
    core.port_status(y, OFPPR_MODIFY, down(y), 2.01)
    out = core.tick(2 + CARRIER_GRACE + 0.1)
    assert port_mods(out) == {(x, port): True}
    core.port_status(x, OFPPR_MODIFY, down(x, OFPPC_PORT_DOWN), 3.2)
    # Y's router returns: X is released; nothing stays stuck
    assert port_mods(core.port_status(y, OFPPR_MODIFY, up(y), 4)) == {(x, port): False}


def test_tunnel_losing_liveness_takes_every_link_of_the_pair_down_on_both_sides():
    t, core = running_core()
    x, y = pair(t)
    out = core.port_status(x, OFPPR_MODIFY, PortInfo(1, "t", hw(x, 1), 0, 0), 1.0)
    p1, p2 = t.link(1).ofport, t.link(2).ofport
    assert port_mods(out) == {(x, p1): True, (x, p2): True, (y, p1): True, (y, p2): True}
    assert {core.link_state(t.link(i)) for i in (1, 2)} == {"down"}
    assert core.link_state(t.link(3)) == "up"                       # another pair: untouched
    out = core.port_status(x, OFPPR_MODIFY, PortInfo(1, "t", hw(x, 1), 0, OFPPS_LIVE), 2.0)
    assert port_mods(out) == {(x, p1): False, (x, p2): False, (y, p1): False, (y, p2): False}


def test_a_lost_server_seen_through_bfd_on_the_surviving_side():
    t, core = running_core()
    x, y = pair(t)
    core.disconnected(x, 1.0)
    out = core.port_status(y, OFPPR_MODIFY, PortInfo(1, "t", hw(y, 1), 0, 0), 1.2)
    assert set(port_mods(out)) == {(y, t.link(1).ofport), (y, t.link(2).ofport)}   # nothing to the lost one


def test_operator_fail_and_restore_reach_both_routers():
    t, core = running_core()
    x, y = pair(t, "VM2", "VM3")
    p = t.link(3).ofport
    assert port_mods(core.fail_link(3, 1)) == {(x, p): True, (y, p): True}
    assert core.link_state(t.link(3)) == "failed"
    assert port_mods(core.restore_link(3, 2)) == {(x, p): False, (y, p): False}


def test_port_added_and_removed_touch_only_that_link():
    t = topo()
    core = FabricCore(t)
    x = dp(t, "VM1", "VM2")
    core.connected(x, 0)
    without_2 = [p for p in ports_of(t, x) if p.port_no != t.link(2).ofport]
    core.synced(x, without_2, [], 0)
    p2 = t.link(2).ofport
    out = core.port_status(x, OFPPR_ADD, PortInfo(p2, "l2", hw(x, p2), 0, OFPPS_LIVE), 1)
    adds = flow_mods(out, ofp.OFPFC_ADD)
    assert len(adds) == 3 and {m.cookie & 0xFFFF for m in adds} == {2}
    out = core.port_status(x, OFPPR_DELETE, PortInfo(p2, "l2", hw(x, p2), 0, OFPPS_LIVE), 2)
    deletes = flow_mods(out, ofp.OFPFC_DELETE_STRICT)
    assert len(deletes) == 3 and len(flow_mods(out)) == 3
    # a port that is no link of ours changes nothing
    assert core.port_status(x, OFPPR_ADD, PortInfo(77, "eth9", hw(x, 77), 0, OFPPS_LIVE), 3) == {}


def test_the_core_never_changes_the_memoised_table_it_shares():
    """A sync hands the core the memoised table itself (read-only, no copy); port events that
    change what the core believes installed must leave the memo as it was: a later sync of a
    table that is as it should be still sends nothing, and the memo still equals a fresh derivation."""
    t = topo()
    x = dp(t, "VM1", "VM2")
    every = [p.port_no for p in ports_of(t, x)]
    fresh = bridge_flows(topo(), t.bridges[x], every)     # first: another topology object resets the memo
    core = FabricCore(t)
    connect_all(core, t)
    table, wanted = bridge_table(t, t.bridges[x], every)
    assert table is core.bridges[x].installed                     # shared, not copied
    with pytest.raises(TypeError):
        table[next(iter(table))] = None                            # the view refuses a change
    assert dict(table) == fresh and wanted == frozenset(fresh.values())
    p2 = t.link(2).ofport
    core.port_status(x, OFPPR_DELETE, PortInfo(p2, "l2", hw(x, p2), 0, OFPPS_LIVE), 1)
    assert len(core.bridges[x].installed) == len(fresh) - 3
    core.port_status(x, OFPPR_ADD, PortInfo(p2, "l2", hw(x, p2), 0, OFPPS_LIVE), 2)
    core.port_status(x, OFPPR_DELETE, PortInfo(p2, "l2", hw(x, p2), 0, OFPPS_LIVE), 3)
    assert dict(bridge_table(t, t.bridges[x], every)[0]) == fresh
    other = FabricCore(t)
    other.connected(x, 4)
    assert other.synced(x, ports_of(t, x), list(fresh.values()), 4) == {}


def test_reload_adds_the_flows_of_a_new_link():
    t, core = running_core()
    t2 = parse_topology((TOPO % "key") + "  - {a: 1.A, b: 2.C, rel: customer}\n", "t.yaml")
    x = dp(t, "VM1", "VM2")
    p5 = t2.link(5).ofport
    assert core.reload(t2, 1) == {}                    # its port is not there yet
    out = core.port_status(x, OFPPR_ADD, PortInfo(p5, "l5", hw(x, p5), 0, OFPPS_LIVE), 2)
    assert {m.cookie & 0xFFFF for m in flow_mods(out, ofp.OFPFC_ADD)} == {5}


def test_flows_from_switch_stats_compare_equal_to_ours():
    """What a switch reports back (here: our own messages parsed as stats) is the same Flow."""
    t = topo()
    d = dp(t, "VM1", "VM2")
    for flow in wanted_flows(t, d):
        mod = ofmsg.flow_add(flow)
        stats = parser.OFPFlowStats(table_id=0, priority=mod.priority, cookie=mod.cookie, match=mod.match,
                                    instructions=mod.instructions)
        assert ofmsg.flow_from_stats(stats) == flow


# ---- property: whatever order routers fail and return in, the link settles correctly ----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class PortSim:
    """One remote link's two bridge ports: applies the core's PortMods and reports like OvS does
    (a port held down, or whose router is gone, shows LINK_DOWN)."""

    def __init__(self, core, t, link_id):
        self.core, self.t = core, t
        self.link = t.link(link_id)
        x, y = self.link.servers()
        self.dpids = {x: t.dpid(x, y), y: t.dpid(y, x)}
        self.router_up = {x: True, y: True}
        self.held = {x: False, y: False}
        self.in_flight = []                 # PortMods sent but not yet applied by the switch
        self.now = 0.0

    def _report(self, server):
        d, port = self.dpids[server], self.link.ofport
        state = OFPPS_LINK_DOWN if (self.held[server] or not self.router_up[server]) else OFPPS_LIVE
        info = PortInfo(port, "l", hw(d, port), OFPPC_PORT_DOWN if self.held[server] else 0, state)
        self._apply(self.core.port_status(d, OFPPR_MODIFY, info, self.now))

    def _apply(self, out):
        self.in_flight.extend(port_mods(out).items())

    def deliver(self):
        while self.in_flight:
            (d, port), down = self.in_flight.pop(0)
            server = next(s for s, dd in self.dpids.items() if dd == d)
            if port == self.link.ofport and self.held[server] != down:
                self.held[server] = down
                self._report(server)

    def router(self, server, up):
        self.now += 0.05
        if self.router_up[server] != up:
            self.router_up[server] = up
            if not self.held[server]:       # a held port shows no change when its router moves
                self._report(server)

    def wait(self, seconds):
        self.deliver()
        self.now += seconds
        self._apply(self.core.tick(self.now))
        self.deliver()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2, 3]), st.booleans()), max_size=12))
def test_link_settles_to_the_truth_whatever_the_order_of_failures(events):
    t, core = running_core()
    sim = PortSim(core, t, 1)
    x, y = sim.link.servers()
    for what, up in events:
        if what == 3:
            sim.deliver()
        elif what == 2:
            sim.wait(CARRIER_GRACE * 2 if up else 0.1)
        else:
            sim.router((x, y)[what], up)
    sim.wait(CARRIER_GRACE * 2)
    sim.wait(CARRIER_GRACE * 2)
    ux, uy = sim.router_up[x], sim.router_up[y]
    if ux and uy:
        assert not sim.held[x] and not sim.held[y]
        assert core.link_state(sim.link) == "up"
    else:
        assert core.link_state(sim.link) == "down"
        if ux != uy:                         # the router still up must have lost carrier
            alive = x if ux else y
            assert sim.held[alive]
    # and then both routers come back: the link always recovers
    sim.router(x, True)
    sim.router(y, True)
    sim.wait(CARRIER_GRACE * 2)
    sim.wait(CARRIER_GRACE * 2)
    assert not sim.held[x] and not sim.held[y] and core.link_state(sim.link) == "up"


def test_tos_marks_are_numbered_per_server_pair_and_fit_dscp():
    """Link ids run over the whole topology; DSCP marks restart at 1 for every server pair."""
    t = topo("tos")
    assert t.link_marks == {1: 1, 2: 2, 3: 1}          # link 4 is local: no mark
    dscps = {f.actions[0][2] for f in bridge_flows(t, t.bridge("VM2", "VM3"), [t.link(3).ofport]).values()
             if f.actions and f.actions[0][:2] == ("set_field", "ip_dscp") and f.actions[0][2]}
    assert dscps == {1}


def test_port_events_racing_the_sync_are_applied_on_top_of_the_port_list():
    t, core = running_core()
    x, y = pair(t)
    p1 = t.link(1).ofport
    core.connected(x, 1.0)
    # X's port list says link 1 is fine, then its router goes away before the flows arrive
    later = [(OFPPR_MODIFY, PortInfo(p1, "l1", hw(x, p1), 0, OFPPS_LINK_DOWN))]
    out = core.synced(x, ports_of(t, x), [], 1.0, later=later)
    assert port_mods(out) == {(y, p1): True}
    # and a port deleted after the list was read gets no flows
    core.connected(x, 2.0)
    out = core.synced(x, ports_of(t, x), [], 2.0, later=[(OFPPR_DELETE, PortInfo(p1, "l1", hw(x, p1), 0, 0))])
    assert {m.cookie & 0xFFFF for m in flow_mods(out, ofp.OFPFC_ADD)} == {0, 2}
