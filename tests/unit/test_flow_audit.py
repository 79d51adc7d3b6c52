"""Issue 21 item 5: a flow table changed behind the controller's back (`ovs-ofctl del-flows`, a flow
added or removed by hand) is noticed by the periodic audit (one aggregate stats request per bridge),
reported (/v1/switches: synced false) and repaired by a resync that sends only the difference.
The pure core's decisions, then the real app against fake switches."""
import time

from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import views
from minet_sdn.core.fabric import AUDIT_INTERVAL, OFPPR_ADD, FabricCore, PortInfo
from minet_sdn.topology import parse_topology

from tests.fakeswitch import FlowEntry
from tests.unit.app_harness import Lab
from tests.unit.test_refused_resync import SYNC, TOPO, requests, syncs


def _core():
    t = parse_topology(TOPO % "key", "rs.yaml")
    core = FabricCore(t)
    for dpid in t.bridges:
        core.connected(dpid, 0.0)
        core.synced(dpid, [], [], 0.0)
    return t, core, t.dpid("VM1", "VM2")


def _synced(core, dpid):
    return next(s for s in views.switch_view(core) if s["dpid"] == f"{dpid:016x}")["synced"]


def test_the_core_audits_each_bridge_every_interval_and_resyncs_a_changed_table():
    t, core, d = _core()
    expected = len(core.bridges[d].installed)
    assert requests(core.tick(AUDIT_INTERVAL - 0.1), d) == []            # not yet
    out = core.tick(AUDIT_INTERVAL)
    assert set(out) == set(t.bridges) and requests(out, d) == [parser.OFPAggregateStatsRequest]
    assert core.tick(AUDIT_INTERVAL + 0.1) == {}                          # one in flight per bridge
    assert core.audited(d, expected, AUDIT_INTERVAL + 0.2) == {} and _synced(core, d)
    # the next round finds the table flushed: reported at once, resynced
    core.tick(2 * AUDIT_INTERVAL + 0.2)
    out = core.audited(d, 0, 2 * AUDIT_INTERVAL + 0.3)
    assert syncs(out, d) == SYNC and requests(out, d) == []
    assert not _synced(core, d) and core.counters["repair"] == 1
    assert core.bridges[d].repairs == 1
    core.synced(d, [], [], 2 * AUDIT_INTERVAL + 0.4)                     # the resync's answers
    assert _synced(core, d)


def test_an_audit_that_crossed_our_own_changes_proves_nothing():
    t, core, d = _core()
    core.tick(AUDIT_INTERVAL)
    before = len(core.bridges[d].installed)
    # link 1's port appears after the audit request left: its flows are sent after it...
    out = core.port_status(d, OFPPR_ADD, PortInfo(101, t.link_port_name(1), "02:00:00:00:00:65", 0, 0),
                           AUDIT_INTERVAL + 0.1)
    assert any(isinstance(m, parser.OFPFlowMod) for m in out[d]) and len(core.bridges[d].installed) > before
    # a count taken with or without them proves nothing about the table we now believe in
    assert core.audited(d, len(core.bridges[d].installed), AUDIT_INTERVAL + 0.2) == {}
    assert _synced(core, d) and core.counters["repair"] == 0


def _audit(lab):
    """One audit round now (the tick thread is not running in the harness), answers delivered."""
    lab.call(lambda: lab.app._send(lab.app.core.tick(time.monotonic() + AUDIT_INTERVAL + 1)))
    lab.pump()


def test_a_flushed_table_is_noticed_and_repaired_without_a_reconnect(tmp_path):
    lab = Lab(tmp_path, TOPO % "key")
    dpid = lab.topo.dpid("VM1", "VM2")
    switch = lab.switches[dpid]
    good = lab.table(dpid)
    switch.flows.clear()                                          # ovs-ofctl del-flows
    view = {s["dpid"]: s for s in lab.get_json("/v1/switches")["switches"]}
    assert view[f"{dpid:016x}"]["synced"]                         # nobody could know yet
    mark = lab.mark()
    _audit(lab)
    assert lab.table(dpid) == good                                # repaired
    adds = [m for m in lab.sent_since(mark).get(dpid, []) if isinstance(m, parser.OFPFlowMod)]
    assert len(adds) == len(good)
    other = {d for d, msgs in lab.sent_since(mark, parser.OFPFlowMod).items() if msgs}
    assert other == {dpid}                                        # the others were only counted
    view = {s["dpid"]: s for s in lab.get_json("/v1/switches")["switches"]}
    assert view[f"{dpid:016x}"]["synced"] and view[f"{dpid:016x}"]["repairs"] == 1
    assert lab.app.core.counters["repair"] == 1
    mark = lab.mark()
    _audit(lab)                                                   # all well: one request each, nothing else
    sent = lab.sent_since(mark)
    assert all(all(isinstance(m, parser.OFPAggregateStatsRequest) for m in msgs) for msgs in sent.values())


def test_a_stray_flow_added_by_hand_is_removed(tmp_path):
    lab = Lab(tmp_path, TOPO % "tos")
    dpid = lab.topo.dpid("VM2", "VM3")
    switch = lab.switches[dpid]
    good = lab.table(dpid)
    template = switch.flows[0]
    switch.flows.append(FlowEntry(table_id=template.table_id, priority=template.priority + 1, match={},
                                  instructions=template.instructions, cookie=0x1234))
    assert lab.table(dpid) != good
    _audit(lab)
    assert lab.table(dpid) == good
