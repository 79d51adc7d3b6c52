"""The pure controller core: topology + what the switches told us + an event -> OpenFlow messages.

No sockets, no os-ken event loop, no clock: every handler takes `now` and returns an `Out`:
`{dpid: [message, ...]}` built with datapath=None, plus `Out.syncs`, the switches to read again
(their ports, then their flows; the answers go to `synced()`). The os-ken shell
(minet_sdn.apps.remote_links) only decodes events, calls these handlers, sends the messages and
starts the syncs they return (core/exchanges.py keeps what is in flight).

How link state is decided
-------------------------
(An IXP segment, a member on another server than its IXP, is handled exactly as a remote link.)
For a remote link L between servers X and Y there is one port on X's bridge towards Y and one on
Y's bridge towards X. A side is *down* when its port is missing or has lost carrier (its router
went away). L is down when a side is down, when the tunnel of the pair is not live (BFD), or when
an operator failed it. While L is down, the controller sets the port on the *other* side(s) to
PORT_DOWN so that router loses carrier at once and BGP fails over without waiting for hold timers.

Two rules keep this from locking itself up:
  * a port we forced down tells us nothing about its router, so we keep the carrier we last saw;
  * we never force a side down merely because the other side is down if that side is itself down
    (otherwise two dead sides would hold each other down forever).
After we release a port, the kernel needs a moment to raise carrier again; a short grace period
stops that blip from being read as the router going away.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

from ..topology.model import LINK_OFPORT_BASE, TUNNEL_OFPORT, Bridge, Link, Topology
from . import ofmsg
from .damping import HOLD, Damper
from .flows import Flow, FlowKey, bridge_flows, bridge_table, link_flows

LOG = logging.getLogger(__name__)

# os-ken / OpenFlow 1.3 bit values, repeated here so the core needs no ofproto import for logic.
OFPPC_PORT_DOWN = 1 << 0
OFPPS_LINK_DOWN = 1 << 0
OFPPS_LIVE = 1 << 2
OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY = 0, 1, 2

CARRIER_GRACE = 1.0   # seconds a released port may still show LINK_DOWN before we believe it
# After a switch refuses something (refused()): the first resync at once, then back-off doubling
# from RESYNC_FIRST to RESYNC_MAX seconds while refusals go on; quiet for RESYNC_MAX starts afresh.
RESYNC_FIRST = 1.0
RESYNC_MAX = 60.0
# Every AUDIT_INTERVAL seconds each synced bridge is asked how many flows it holds (one aggregate
# stats request, whatever the table's size); a count other than what we installed (a table flushed
# with `ovs-ofctl del-flows`, a stray flow added) means the table is not ours any more: the bridge
# is reported unsynced and resynced at once (its flows read, only the difference sent).
AUDIT_INTERVAL = 5.0


class Out(dict):
    """What a handler returns: {dpid: [message, ...]} to send, in order, and `syncs`: {dpid: [the
    sync requests]} for each switch to read again (ports, then flows), whose answers go to
    FabricCore.synced(). A typed part of the result, so the shell never guesses a resync from the
    messages. Equal to another Out (or a plain dict) only with the same syncs (a dict has none)."""

    __hash__ = None          # type: ignore[assignment]

    def __init__(self, msgs=(), syncs: Optional[Dict[int, List[object]]] = None):
        super().__init__(msgs)
        self.syncs: Dict[int, List[object]] = dict(syncs or {})

    def __eq__(self, other):
        if not isinstance(other, dict):
            return NotImplemented
        return dict.__eq__(self, other) and self.syncs == getattr(other, "syncs", {})

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __repr__(self) -> str:
        return f"Out({dict.__repr__(self)}, syncs={self.syncs!r})"


# What identifies a link across a reload or a restart: its two routers (in either order) and, for
# parallel links between the same two routers, which of them it is. Never its position in the list:
# deleting link 2 from the file renumbers every later link.
LinkKey = Tuple[str, str, int]


def link_keys(topo: Topology) -> Dict[int, LinkKey]:
    """{link id: its endpoint key} for every link of `topo`."""
    seen: Dict[Tuple[str, str], int] = {}
    out: Dict[int, LinkKey] = {}
    for link in topo.links + topo.ixp_segments:       # a segment: (member, "ixp<N>") never a link's
        a, b = sorted((link.a.router, link.b.router))
        n = seen.get((a, b), 0)
        seen[(a, b)] = n + 1
        out[link.id] = (a, b, n)
    return out


def ids_for_keys(topo: Topology, keys: Iterable[LinkKey]) -> Set[int]:
    """The ids the links with these keys have in `topo` (keys of links it no longer has: dropped)."""
    by_key = {key: lid for lid, key in link_keys(topo).items()}
    return {by_key[key] for key in keys if key in by_key}


@dataclass(frozen=True)
class PortInfo:
    """A port as a switch describes it (OFPPort, decoded)."""
    port_no: int
    name: str
    hw_addr: str
    config: int
    state: int

    @property
    def admin_down(self) -> bool:
        return bool(self.config & OFPPC_PORT_DOWN)

    @property
    def link_down(self) -> bool:
        return bool(self.state & OFPPS_LINK_DOWN)

    @property
    def live(self) -> bool:
        return bool(self.state & OFPPS_LIVE)


@dataclass
class PortState:
    info: PortInfo
    carrier: bool = True           # what the router side last showed while we were not forcing it
    grace_until: float = 0.0
    requested_down: Optional[bool] = None   # PortMod sent, not yet confirmed by a PortStatus


@dataclass
class BridgeState:
    bridge: Bridge
    connected: bool = False
    synced: bool = False           # ports and flows known (first sync done)
    ports: Dict[int, PortState] = field(default_factory=dict)
    # what we believe the table holds: after a sync, flows.bridge_table's read-only view of the
    # memo (shared, never changed); _set_link_flows makes it a dict of our own before changing it
    installed: Mapping[FlowKey, Flow] = field(default_factory=dict)
    refusals: int = 0                      # OpenFlow errors the switch answered us with
    last_refusal: float = float("-inf")
    resync_at: Optional[float] = None      # a resync planned for then (refused())
    resync_backoff: float = 0.0            # delay of the next one if refusals go on
    generation: int = 0                    # bumped whenever `installed` changes
    table_ok: bool = True                  # the last audit found the table as installed
    audit_due: float = 0.0                 # next audit at
    audit_sent: Optional[Tuple[int, int]] = None   # (generation, flows expected) of the audit in flight
    repairs: int = 0                       # audits that found the table changed behind our back


class FabricCore:
    def __init__(self, topo: Topology, failed: Iterable[int] = ()):
        self.topo = topo
        self.bridges: Dict[int, BridgeState] = {dpid: BridgeState(b) for dpid, b in topo.bridges.items()}
        # link ids failed by an operator (persisted by the shell, so a restart keeps them failed)
        self.failed: Set[int] = {lid for lid in failed if lid in {l.id for l in topo.tunnelled}}
        self.now = 0.0
        self.damper = Damper()        # when a BFD-down of a tunnel counts (core/damping.py)
        self.counters = {"flow_add": 0, "flow_delete": 0, "port_mod": 0, "sync": 0, "resync": 0,
                         "audit": 0, "repair": 0}
        self.audit_interval = AUDIT_INTERVAL

    # ---- queries ------------------------------------------------------------------------------
    def known(self, dpid: int) -> bool:
        return dpid in self.bridges

    def link_state(self, link: Link) -> str:
        """'failed', 'down' or 'up' for a remote link; local links are always 'up' (not ours)."""
        if link.id in self.failed:
            return "failed"
        if not link.remote:
            return "up"
        x, y = link.servers()
        if not self.pair_live(x, y) or self._side_down(link, x) or self._side_down(link, y):
            return "down"
        return "up"

    def pair_live(self, x: str, y: str) -> bool:
        """The tunnel between x and y is live as seen from every bridge of the pair we have heard from."""
        for server, peer in ((x, y), (y, x)):
            st = self.bridges[self.topo.dpid(server, peer)]
            if not st.synced:
                continue
            port = st.ports.get(TUNNEL_OFPORT)
            if port is None or not self.damper.live(st.bridge.dpid, port.info.live):
                return False
        return True

    def tunnel_live(self, dpid: int) -> Optional[bool]:
        st = self.bridges[dpid]
        if not st.synced:
            return None
        port = st.ports.get(TUNNEL_OFPORT)
        return bool(port and self.damper.live(dpid, port.info.live))

    def _tunnel_seen(self, st: BridgeState, now: float) -> None:
        port = st.ports.get(TUNNEL_OFPORT)
        live = bool(port and port.info.live)
        seen = self.damper.tunnels.get(st.bridge.dpid)
        was = None if seen is None else seen.raw       # observe() changes `seen`
        counted = self.damper.observe(st.bridge.dpid, live, now)
        if was is not None and was != live:            # in the log: when each BFD change reached us
            LOG.info("tunnel of %s: BFD %s%s", st.bridge.name, "up" if live else "down",
                     "" if live or counted else f" (held {HOLD:g} s: the tunnel flaps)")

    # ---- events -------------------------------------------------------------------------------
    def connected(self, dpid: int, now: float) -> Out:
        """A known switch connected: ask for its ports and flows (in that order); the answers go
        to synced()."""
        self.now = now
        st = self.bridges[dpid]
        st.connected = True
        st.synced = False
        st.resync_at = None                # this sync is the resync
        st.audit_sent = None
        return Out(syncs={dpid: self._sync_requests()})

    def disconnected(self, dpid: int, now: float) -> Out:
        # Keep what we last knew of its ports: with fail_mode=secure it keeps forwarding, and a lost
        # server shows up as BFD on the surviving side, not as a missing connection.
        self.now = now
        if dpid in self.bridges:
            self.bridges[dpid].connected = False
            self.bridges[dpid].resync_at = None
            self.bridges[dpid].audit_sent = None
        return Out()

    def refused(self, dpid: int, now: float) -> Out:
        """The switch answered something we sent with an OpenFlow error (a bundle refused at commit;
        a FlowMod refused inside one, which OvS skips while it commits the rest): its table may not
        be what `installed` says. Read its ports and flows again, a resync that sends only the
        difference (synced() takes the answers, as after a connection): at once the first time, then,
        while refusals go on, after a back-off doubling from RESYNC_FIRST to RESYNC_MAX (tick() sends
        it), so a switch that refuses every time is asked again and again, but not hammered."""
        self.now = now
        st = self.bridges.get(dpid)
        if st is None or not st.connected:
            return Out()
        st.refusals += 1
        if now - st.last_refusal > RESYNC_MAX:
            st.resync_backoff = 0.0
        st.last_refusal = now
        if st.resync_at is not None:       # one is planned already
            return Out()
        st.resync_at = now + st.resync_backoff
        st.resync_backoff = min(RESYNC_MAX, max(RESYNC_FIRST, 2 * st.resync_backoff))
        return self._due_resyncs(now)

    def synced(self, dpid: int, ports: Iterable[PortInfo], flows: Iterable[Flow], now: float,
               later: Iterable[Tuple[int, PortInfo]] = ()) -> Out:
        """First (or re-)sync after connection: send only the difference, then a barrier.

        `later` are the (reason, port) events that arrived after the port list was read and
        before the flows were: newer than `ports`, so they are applied on top of it.
        """
        self.now = now
        st = self.bridges[dpid]
        described = {p.port_no: p for p in ports}
        for reason, info in later:
            if reason == OFPPR_DELETE:
                described.pop(info.port_no, None)
            else:
                described[info.port_no] = info
        old = st.ports
        st.ports = {}
        for info in described.values():
            prev = old.get(info.port_no)
            ps = PortState(info, carrier=prev.carrier if prev else True)
            self._observe(ps)
            st.ports[info.port_no] = ps
        st.synced = True
        self._tunnel_seen(st, now)
        self.counters["sync"] += 1
        flows = flows if isinstance(flows, list) else list(flows)
        desired, wanted = bridge_table(self.topo, st.bridge, st.ports)
        msgs: List[object] = []
        if not self._table_is(flows, wanted):
            actual = {f.key: f for f in flows}
            for key, flow in actual.items():
                if key not in desired:
                    msgs.append(self._delete(flow))
            for key, flow in desired.items():
                if actual.get(key) != flow:
                    if key in actual:
                        LOG.debug("replacing flow\n  have %s\n  want %s", actual[key], flow)
                    msgs.append(self._add(flow))
        st.installed = desired
        st.generation += 1
        st.table_ok = True                 # what it lacked or had too much is being sent now
        st.audit_sent = None               # an audit in flight counted the old table
        st.audit_due = now + self.audit_interval
        out = Out({dpid: msgs} if msgs else {})
        self._merge(out, self._reconcile(self._links_of(st.bridge)))
        return self._with_barriers(out)

    def port_status(self, dpid: int, reason: int, info: PortInfo, now: float) -> Out:
        self.now = now
        st = self.bridges[dpid]
        if not st.synced:
            return Out()  # the shell hands events that race the sync to synced(later=...)
        out = Out()
        link = self._link_at(st.bridge, info.port_no)
        if reason == OFPPR_DELETE:
            st.ports.pop(info.port_no, None)
            if link:
                self._merge(out, {dpid: self._set_link_flows(st, link, present=False)})
        else:
            ps = st.ports.get(info.port_no)
            appeared = ps is None
            if appeared:
                ps = st.ports[info.port_no] = PortState(info)
            else:
                ps.info = info
            if ps.requested_down is not None and info.admin_down == ps.requested_down:
                ps.requested_down = None
            self._observe(ps)
            if appeared and link:
                self._merge(out, {dpid: self._set_link_flows(st, link, present=True)})
        if info.port_no == TUNNEL_OFPORT:
            self._tunnel_seen(st, now)
            scope = self._links_of(st.bridge)
        else:
            scope = [link] if link else []
        self._merge(out, self._reconcile(scope))
        return self._with_barriers(out)

    def fail_link(self, link_id: int, now: float) -> Out:
        self.now = now
        self.failed.add(link_id)
        return self._with_barriers(self._reconcile([self.topo.link(link_id)]))

    def restore_link(self, link_id: int, now: float) -> Out:
        self.now = now
        self.failed.discard(link_id)
        return self._with_barriers(self._reconcile([self.topo.link(link_id)]))

    def tick(self, now: float) -> Out:
        """Periodic: a grace period ran out, so a LINK_DOWN we were ignoring now counts; a resync
        planned after a refusal is due."""
        self.now = now
        resyncs = self._due_resyncs(now)
        expired: List[Link] = []
        for dpid in self.damper.due(now):          # a held BFD-down lasted: its links fail now
            if dpid in self.bridges:
                LOG.info("tunnel of %s: BFD down for %g s: its links fail", self.bridges[dpid].bridge.name, HOLD)
                expired.extend(self._links_of(self.bridges[dpid].bridge))
        for st in self.bridges.values():
            for ps in st.ports.values():
                if ps.grace_until and now >= ps.grace_until:
                    ps.grace_until = 0.0
                    self._observe(ps)
                    link = self._link_at(st.bridge, ps.info.port_no)
                    if link:
                        expired.append(link)
        out = self._with_barriers(self._reconcile(expired)) if expired else Out()
        self._merge(out, self._due_audits(now, skip=resyncs))
        self._merge(out, resyncs)           # Out.syncs: the shell starts them
        return out

    def audited(self, dpid: int, flow_count: int, now: float) -> Out:
        """The answer to an audit (tick()): the switch holds `flow_count` flows. Another count than
        we installed, with nothing changed by us meanwhile: the table was changed behind our back
        (flushed, a flow added or removed by hand): reported (switches: synced false) and resynced."""
        self.now = now
        st = self.bridges.get(dpid)
        if st is None or st.audit_sent is None:
            return Out()
        generation, expected = st.audit_sent
        st.audit_sent = None
        if generation != st.generation or not (st.connected and st.synced):
            return Out()                   # we changed the table since: this count proves nothing
        if flow_count == expected:
            st.table_ok = True
            return Out()
        LOG.warning("switch %016x holds %d flows, %d installed: its table was changed; resyncing",
                    dpid, flow_count, expected)
        st.table_ok = False
        st.repairs += 1
        self.counters["repair"] += 1
        if st.resync_at is None:
            st.resync_at = now
        return self._due_resyncs(now)

    def _due_audits(self, now: float, skip: Out) -> Out:
        """Audit requests due by `now`, except for bridges being resynced (`skip.syncs`)."""
        out = Out()
        for dpid, st in self.bridges.items():
            if (dpid not in skip.syncs and st.connected and st.synced and st.audit_sent is None and st.resync_at is None
                    and now >= st.audit_due):
                st.audit_sent = (st.generation, len(st.installed))
                st.audit_due = now + self.audit_interval
                self.counters["audit"] += 1
                out[dpid] = [ofmsg.aggregate_request()]
        return out

    def failed_keys(self) -> List[LinkKey]:
        keys = link_keys(self.topo)
        return sorted(keys[lid] for lid in self.failed if lid in keys)

    def reload(self, topo: Topology, now: float) -> Out:
        """A new topology (links added or removed): converge every synced bridge to it.

        Operator failures follow the link (its endpoints), not its id: ids are list positions."""
        self.now = now
        failed = self.failed_keys()
        self.topo = topo
        out = Out()
        bridges: Dict[int, BridgeState] = {}
        for dpid, bridge in topo.bridges.items():
            st = self.bridges.get(dpid) or BridgeState(bridge)
            st.bridge = bridge
            bridges[dpid] = st
        self.bridges = bridges
        self.failed = ids_for_keys(topo, failed) & {link.id for link in topo.tunnelled}
        for dpid, st in bridges.items():
            if not st.synced:
                continue
            desired = bridge_flows(topo, st.bridge, st.ports)
            msgs = [self._delete(f) for k, f in st.installed.items() if k not in desired]
            msgs += [self._add(f) for k, f in desired.items() if st.installed.get(k) != f]
            st.installed = desired
            st.generation += 1
            if msgs:
                out[dpid] = msgs
        self._merge(out, self._reconcile(topo.tunnelled))
        return self._with_barriers(out)

    # ---- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _sync_requests() -> List[object]:
        """What a sync asks a switch: its ports, then its flows (answers go to synced())."""
        return [ofmsg.port_desc_request(), ofmsg.flow_stats_request()]

    def _due_resyncs(self, now: float) -> Out:
        """Resyncs due by `now`, as Out.syncs."""
        out = Out()
        for dpid, st in self.bridges.items():
            if st.resync_at is not None and now >= st.resync_at:
                st.resync_at = None
                if st.connected:
                    self.counters["resync"] += 1
                    out.syncs[dpid] = self._sync_requests()
        return out

    @staticmethod
    def _table_is(flows: List[Flow], wanted: "frozenset") -> bool:
        """The flows read are exactly `wanted`: as many distinct flows, each one of them (the
        common resync, checked with one set lookup per flow instead of a keyed diff)."""
        if len(flows) != len(wanted):
            return False
        read = set(flows)
        return len(read) == len(wanted) and read <= wanted

    def _observe(self, ps: PortState) -> None:
        """Update what we believe of the router behind a port from what the switch reports."""
        info = ps.info
        if info.admin_down:
            return                        # forced by us (or someone): says nothing of the router
        if info.link_down and self.now < ps.grace_until:
            return                        # carrier still coming back after we released the port
        ps.carrier = not info.link_down

    def _side_down(self, link: Link, server: str) -> bool:
        st = self.bridges[self.topo.dpid(server, link.far(server).server)]
        if not st.synced:
            return False                  # never heard from: no evidence either way
        ps = st.ports.get(link.ofport)
        return ps is None or not ps.carrier

    def _forced(self, link: Link, server: str) -> bool:
        """Should `server`'s port of `link` be held PORT_DOWN?"""
        other = link.far(server).server
        if link.id in self.failed or not self.pair_live(server, other):
            return True
        return self._side_down(link, other) and not self._side_down(link, server)

    def _reconcile(self, links: Iterable[Link]) -> Out:
        """PortMods that bring both ends of `links` to the config their state calls for.

        The rule is _forced's; the bridges and tunnel liveness of a server pair are looked up once
        per pair, not per link (a sync reconciles every link of a bridge: 10,000 at scale)."""
        out = Out()
        pairs: Dict[Tuple[str, str], Tuple[int, BridgeState, BridgeState, bool]] = {}
        failed = self.failed
        for link in links:
            if not link.remote:
                continue
            x, y = link.a.server, link.b.server
            pair = pairs.get((x, y))
            if pair is None:
                dx, dy = self.topo.dpid(x, y), self.topo.dpid(y, x)
                pair = pairs[(x, y)] = (dx, dy, self.bridges[dx], self.bridges[dy], self.pair_live(x, y))
            dx, dy, sx, sy, live = pair
            port = link.ofport
            px, py = sx.ports.get(port), sy.ports.get(port)
            down_x = sx.synced and (px is None or not px.carrier)       # _side_down
            down_y = sy.synced and (py is None or not py.carrier)
            hard = link.id in failed or not live
            for dpid, st, ps, want in ((dx, sx, px, hard or (down_y and not down_x)),
                                       (dy, sy, py, hard or (down_x and not down_y))):
                if ps is None or not (st.connected and st.synced):
                    continue
                have = ps.requested_down if ps.requested_down is not None else ps.info.admin_down
                if want == have:
                    continue
                if not want:
                    ps.grace_until = self.now + CARRIER_GRACE
                ps.requested_down = want
                self.counters["port_mod"] += 1
                LOG.info("link %d: %s port %d on %s", link.id, "holding down" if want else "releasing",
                         port, st.bridge.name)
                out.setdefault(dpid, []).append(ofmsg.port_mod(port, ps.info.hw_addr, want))
        return out

    def _set_link_flows(self, st: BridgeState, link: Link, present: bool) -> List[object]:
        msgs: List[object] = []
        installed = st.installed
        for flow in link_flows(self.topo, st.bridge, link):
            if present and installed.get(flow.key) != flow:
                installed = self._own(st)
                installed[flow.key] = flow
                msgs.append(self._add(flow))
            elif not present and flow.key in installed:
                installed = self._own(st)
                del installed[flow.key]
                msgs.append(self._delete(flow))
        if msgs:
            st.generation += 1
        return msgs

    @staticmethod
    def _own(st: BridgeState) -> Dict[FlowKey, Flow]:
        """st.installed as a dict the core may change: the shared memo's view is copied (once)."""
        if type(st.installed) is not dict:
            st.installed = dict(st.installed)
        return st.installed

    def _add(self, flow: Flow):
        self.counters["flow_add"] += 1
        return ofmsg.flow_add(flow)

    def _delete(self, flow: Flow):
        self.counters["flow_delete"] += 1
        return ofmsg.flow_delete(flow)

    def _links_of(self, bridge: Bridge) -> List[Link]:
        return [self.topo.link(lid) for lid in bridge.link_ids]

    def _link_at(self, bridge: Bridge, port_no: int) -> Optional[Link]:
        link = self.topo.link_by_id.get(port_no - LINK_OFPORT_BASE)
        if link is None or link.id not in bridge.link_ids:
            return None
        return link

    @staticmethod
    def _merge(out: Out, more: Out) -> None:
        for dpid, msgs in more.items():
            if msgs:
                out.setdefault(dpid, []).extend(msgs)
        out.syncs.update(getattr(more, "syncs", {}))

    @staticmethod
    def _with_barriers(out: Out) -> Out:
        for msgs in out.values():
            msgs.append(ofmsg.barrier())
        return out
