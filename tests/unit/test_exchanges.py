"""What the controller has in flight with its switches (core/exchanges.py), pure: a sync's answers
assembled from multipart replies of a fake switch (tests/fakeswitch.py) into what the core's
synced() takes, port events racing it, superseded syncs, disconnections, counter polls, bundles;
and the core's typed sync requests (Out.syncs)."""
from __future__ import annotations

import pytest

from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.core import ofmsg
from minet_sdn.core.exchanges import MAX_BUNDLES, Exchanges
from minet_sdn.core.fabric import FabricCore, Out, PortInfo
from minet_sdn.topology import parse_topology

from tests.fakeswitch import FakeSwitch
from tests.unit.test_refused_resync import TOPO


def port_info(port) -> PortInfo:          # what the shell decodes an OFPPort into
    return PortInfo(port.port_no, port.name.decode(), port.hw_addr, port.config, port.state)


class Rig:
    """The core, one fake switch per bridge, and Exchanges between them, as the shell wires them
    (without os-ken's event loop): xids counted here, replies cut into `parts` parts."""

    def __init__(self, parts: int = 3):
        self.topo = parse_topology(TOPO % "key", "rs.yaml")
        self.core = FabricCore(self.topo)
        self.ex = Exchanges()
        self.parts = parts
        self.xid = 0
        self.switches = {}
        for dpid, bridge in self.topo.bridges.items():
            ports, names = {1: f"02:00:00:00:{dpid & 0xFF:02x}:01"}, {1: bridge.tunnel_port}
            for lid in bridge.link_ids:
                port = self.topo.link(lid).ofport
                ports[port] = f"02:00:00:{dpid & 0xFF:02x}:01:{lid:02x}"
                names[port] = self.topo.link_port_name(lid)
            self.switches[dpid] = FakeSwitch(dpid, ports, tunnel_ports=(1,), names=names)
        self.in_flight = []        # (dpid, xid, request) sent, not yet answered

    def send(self, out: Out) -> None:
        for dpid, requests in out.syncs.items():
            asked = []
            for msg in requests:
                self.xid += 1
                asked.append((self.xid, ofmsg.kind(msg)))
                self.in_flight.append((dpid, self.xid, msg))
            self.ex.sync_started(dpid, asked)
        for dpid, msgs in out.items():
            for msg in msgs:
                self.switches[dpid].apply(msg)

    def answer(self, which=None) -> list:
        """Deliver the answers in flight (those `which` picks), each in several parts; the core's
        results are sent on. Returns the SyncDones."""
        done = []
        keep = []
        for dpid, xid, msg in self.in_flight:
            if which is not None and not which(dpid, xid, msg):
                keep.append((dpid, xid, msg))
                continue
            body = self.switches[dpid].apply(msg)
            decode = port_info if isinstance(msg, parser.OFPPortDescStatsRequest) else ofmsg.flow_from_stats
            cut = max(1, -(-len(body) // self.parts))
            chunks = [body[i:i + cut] for i in range(0, len(body), cut)] or [[]]
            whole = None
            for i, chunk in enumerate(chunks):
                whole = self.ex.part(dpid, xid, chunk, more=i < len(chunks) - 1)
                assert (whole is None) == (i < len(chunks) - 1)        # complete with the last part only
            got = self.ex.answered(dpid, xid, [decode(x) for x in whole])
            if got is not None:
                done.append((dpid, got))
                self.send(self.core.synced(dpid, got.ports, got.flows, 0.0, later=got.later))
        self.in_flight = keep
        return done


def test_the_core_asks_for_syncs_apart_from_its_messages():
    rig = Rig()
    d = rig.topo.dpid("VM1", "VM2")
    out = rig.core.connected(d, 0.0)
    assert dict(out) == {} and [ofmsg.kind(m) for m in out.syncs[d]] == ["PortDescStatsRequest", "FlowStatsRequest"]
    assert out != {} and Out() == {} and Out({d: []}, syncs={}) == {d: []}     # a dict has no syncs
    merged = Out({d: ["x"]})
    rig.core._merge(merged, out)
    assert merged == Out({d: ["x"]}, syncs=out.syncs)


def test_a_sync_in_parts_installs_every_flow_and_a_resync_finds_nothing_to_do():
    rig = Rig(parts=3)
    for dpid in rig.topo.bridges:
        rig.send(rig.core.connected(dpid, 0.0))
    done = rig.answer()
    assert sorted(d for d, _ in done) == sorted(rig.topo.bridges)
    assert rig.ex.syncs == {} and rig.ex.parts == {}
    d = rig.topo.dpid("VM1", "VM2")
    sw = rig.switches[d]
    ports = [p for _, got in done if _ == d for p in got.ports]
    assert sorted(p.port_no for p in ports) == sorted(sw.ports)            # every port the switch has
    table = sorted(map(repr, sw.flows))
    assert len(table) == len(rig.core.bridges[d].installed) > 2
    before = len(sw.sent)
    rig.send(rig.core.refused(d, 10.0))                                   # read again: same table
    (dd, got), = rig.answer()
    assert dd == d and len(got.flows) == len(table)
    assert [type(m) for m in sw.sent[before:]] == [parser.OFPPortDescStatsRequest, parser.OFPFlowStatsRequest]
    assert sorted(map(repr, sw.flows)) == table


def test_port_events_before_the_port_list_are_superseded_after_it_kept_for_the_core():
    rig = Rig(parts=1)
    d = rig.topo.dpid("VM1", "VM2")
    sw = rig.switches[d]
    p1 = rig.topo.link(1).ofport
    sw.set_link(p1, False)
    event = port_info(sw.port_status[-1].desc)
    assert not rig.ex.port_event(d, ofp.OFPPR_MODIFY, event)                  # no sync: the core's
    rig.send(rig.core.connected(d, 0.0))
    assert rig.ex.syncing(d)
    assert rig.ex.port_event(d, ofp.OFPPR_MODIFY, event)                      # taken: the list is newer
    rig.answer(lambda dpid, xid, msg: isinstance(msg, parser.OFPPortDescStatsRequest))
    sw.remove_port(p1)                                                        # after the list was read
    gone = port_info(sw.port_status[-1].desc)
    assert rig.ex.port_event(d, ofp.OFPPR_DELETE, gone)
    (_, got), = rig.answer()
    assert got.later == [(ofp.OFPPR_DELETE, gone)]
    assert not rig.ex.syncing(d)
    assert p1 not in rig.core.bridges[d].ports                                # the core applied it
    assert not any(f.cookie & 0xFFFFFFFF == 1 for f in sw.flows)             # no flows for link 1


def test_a_new_sync_supersedes_the_one_in_flight():
    rig = Rig(parts=2)
    d = rig.topo.dpid("VM1", "VM2")
    rig.send(rig.core.connected(d, 0.0))
    old = list(rig.in_flight)
    rig.in_flight = []
    rig.send(rig.core.connected(d, 1.0))                                 # a reconnection
    rig.in_flight = old + rig.in_flight
    done = rig.answer()
    assert len(done) == 1                                                # the old answers: ignored
    assert all(rig.ex.asked(d, xid) is None for _, xid, _ in old)


def test_a_disconnection_drops_its_sync_and_its_half_replies_only():
    ex = Exchanges()
    ex.sync_started(1, [(10, "PortDescStatsRequest"), (11, "FlowStatsRequest")])
    ex.sync_started(2, [(20, "PortDescStatsRequest"), (21, "FlowStatsRequest")])
    assert ex.asked(1, 10) == "ports" and ex.asked(1, 11) == "flows" and ex.asked(1, 12) is None
    assert ex.part(1, 10, [1], more=True) is None and ex.part(2, 20, [2], more=True) is None
    ex.disconnected(1)
    assert not ex.syncing(1) and ex.syncing(2)
    assert list(ex.parts) == [(2, 20)]
    assert ex.answered(1, 10, []) is None                                # late: nobody waits for it
    assert ex.part(2, 20, [3], more=False) == [2, 3]


def test_a_counter_poll_takes_its_reply_and_a_given_up_one_does_not():
    ex = Exchanges()
    waiter = ex.wait(5, 7)
    assert not waiter.done.is_set()
    assert ex.waited(5, 7, ["stats"]) and waiter.done.is_set() and waiter.body == ["stats"]
    assert not ex.waited(5, 7, ["again"])                                 # answered once
    ex.wait(5, 8)
    ex.give_up(5, 8)
    assert not ex.waited(5, 8, ["late"]) and ex.waiters == {}


def test_a_refused_commit_names_its_bundle_and_old_commits_are_forgotten():
    ex = Exchanges()
    for i in range(MAX_BUNDLES + 5):
        ex.bundle_sent(1, 1000 + i, i, 10 + i)
    assert len(ex.bundles) == MAX_BUNDLES
    assert ex.refused_bundle(1, 1000) is None                            # the oldest went first
    assert ex.refused_bundle(1, 1000 + MAX_BUNDLES + 4) == (MAX_BUNDLES + 4, 14 + MAX_BUNDLES)
    assert ex.refused_bundle(1, 1000 + MAX_BUNDLES + 4) is None          # popped
    assert ex.refused_bundle(2, 1010) is None                            # another switch's xid


@pytest.mark.parametrize("parts", [1, 4])
def test_the_sync_ends_with_the_flows_whatever_the_order_of_the_answers(parts):
    rig = Rig(parts=parts)
    d = rig.topo.dpid("VM2", "VM3")
    rig.send(rig.core.connected(d, 0.0))
    assert rig.answer(lambda dpid, xid, msg: isinstance(msg, parser.OFPFlowStatsRequest)) == []
    (dd, got), = rig.answer()
    assert dd == d and len(got.ports) == len(rig.switches[d].ports)
