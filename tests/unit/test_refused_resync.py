"""A switch that answers with an OpenFlow error may not hold what the controller believes (OvS skips
a FlowMod refused inside a bundle and commits the rest; a bundle refused at commit changes
nothing): the controller reads it again and sends the difference, at once, then with back-off
while refusals go on. Through the real app against fake switches, and the pure core's timing."""
from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core.fabric import RESYNC_FIRST, RESYNC_MAX, FabricCore
from minet_sdn.topology import parse_topology

from tests.unit.app_harness import Lab, three_servers

TOPO = three_servers("rs", """\
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM2, routers: [C]}
  3: {server: VM3, routers: [D]}
links:
  - {a: 1.A, b: 2.C, rel: peer}
  - {a: 1.B, b: 2.C, rel: provider}
  - {a: 2.C, b: 3.D, rel: customer}
""")


def requests(out, dpid):
    """The messages the core returned for `dpid` (its sync requests are apart: syncs())."""
    return [type(m) for m in out.get(dpid, [])]


def syncs(out, dpid):
    """The sync requests the core returned for `dpid` (Out.syncs: the shell starts them)."""
    return [type(m) for m in out.syncs.get(dpid, [])]


SYNC = [parser.OFPPortDescStatsRequest, parser.OFPFlowStatsRequest]


def test_after_an_error_the_switch_is_read_again_and_a_skipped_flow_put_back(tmp_path):
    lab = Lab(tmp_path, TOPO % "key")
    dpid = lab.topo.dpid("VM1", "VM2")
    switch = lab.switches[dpid]
    good = lab.table(dpid)
    # what OvS does with a FlowMod it refuses inside a bundle: skip it, commit the rest
    lost = next(e for e in switch.flows if e.cookie & 0xFFFFFFFF == 1)
    switch.flows.remove(lost)
    assert lab.table(dpid) != good
    mark = lab.mark()
    lab.error(dpid, ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_TABLE_FULL, b"\0" * 8)
    assert lab.table(dpid) == good                                 # the lost flow is back
    assert list(lab.sent_since(mark, parser.OFPFlowStatsRequest)) == [dpid]     # that switch only, read again
    adds = [m for m in lab.sent_since(mark).get(dpid, []) if isinstance(m, parser.OFPFlowMod)]
    assert len(adds) == 1 and adds[0].cookie == lost.cookie      # only the difference, nothing flushed
    assert not lab.sent_since(mark, parser.OFPFlowMod).keys() - {dpid}   # other switches untouched
    assert lab.app.core.counters["resync"] == 1


def test_an_error_with_nothing_wrong_costs_one_read_and_no_flowmod(tmp_path):
    lab = Lab(tmp_path, TOPO % "tos")
    dpid = lab.topo.dpid("VM2", "VM3")
    mark = lab.mark()
    lab.error(dpid, ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_TYPE, b"\0" * 8)
    assert len(lab.sent_since(mark, parser.OFPFlowStatsRequest)[dpid]) == 1
    assert not lab.sent_since(mark, parser.OFPFlowMod)
    view = {s["dpid"]: s for s in lab.get_json("/v1/switches")["switches"]}
    assert all(s["synced"] for s in view.values())
    assert {d: s["refusals"] for d, s in view.items() if s["refusals"]} == {f"{dpid:016x}": 1}


def _synced_core():
    t = parse_topology(TOPO % "key", "rs.yaml")
    core = FabricCore(t)
    core.audit_interval = float("inf")     # these tests time resyncs; the audit has its own (test_flow_audit)
    for dpid in t.bridges:
        core.connected(dpid, 0.0)
        core.synced(dpid, [], [], 0.0)
    return t, core, t.dpid("VM1", "VM2")


def test_refusals_that_go_on_are_resynced_with_back_off_then_afresh_after_quiet():
    _t, core, d = _synced_core()
    assert syncs(core.refused(d, 10.0), d) == SYNC               # the first: at once
    assert core.refused(d, 10.1) == {}                              # planned for 10.1 + RESYNC_FIRST
    assert core.refused(d, 10.2) == {}                              # already planned: nothing more
    assert syncs(core.tick(10.1 + RESYNC_FIRST - 0.01), d) == []
    assert syncs(core.tick(10.1 + RESYNC_FIRST), d) == SYNC
    assert core.tick(10.1 + RESYNC_FIRST + 0.1) == {}               # sent once
    t = 20.0
    delays = []
    for _ in range(8):                                              # refusals keep coming
        core.refused(d, t)
        due = next(x / 100 for x in range(int(t * 100), int((t + 2 * RESYNC_MAX) * 100))
                   if syncs(core.tick(x / 100), d) == SYNC)
        delays.append(round(due - t, 2))
        t = due
    assert delays == [2 * RESYNC_FIRST, 4 * RESYNC_FIRST, 8 * RESYNC_FIRST, 16 * RESYNC_FIRST,
                      32 * RESYNC_FIRST, RESYNC_MAX, RESYNC_MAX, RESYNC_MAX]
    assert syncs(core.refused(d, t + RESYNC_MAX + 1), d) == SYNC  # quiet long enough: at once again
    assert core.counters["resync"] == 11


def test_no_resync_for_a_switch_that_is_gone_and_a_new_connection_replaces_a_planned_one():
    _t, core, d = _synced_core()
    core.disconnected(d, 1.0)
    assert core.refused(d, 1.0) == {}
    core.connected(d, 2.0)
    core.synced(d, [], [], 2.0)
    core.refused(d, 3.0)                                            # at once
    core.refused(d, 3.1)                                            # planned
    assert syncs(core.connected(d, 3.2), d) == SYNC              # the connection syncs anyway
    out = core.tick(100.0)
    assert syncs(out, d) == [] and requests(out, d) == []
