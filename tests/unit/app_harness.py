"""Drive the real os-ken app (minet_sdn.apps.remote_links.RemoteLinks) against fake switches.

No sockets, no event loop, no REST listener: the app is built as os-ken's AppManager would build
it (RemoteLinks(), handlers registered with handler.register_instance) but never started, and every
event reaches it through os-ken's own dispatch (`app.get_handlers(ev, state)`), so a handler
registered for the wrong event class or dispatcher would not fire here either.

What crosses between the app and a switch is real OpenFlow:
  * controller -> switch: every message is serialized (`msg.serialize()`), so an invalid message
    fails here as it would on a socket; the object then goes to a `FakeSwitch`;
  * switch -> controller: stats replies, port status, packet-ins and errors are encoded as bytes
    the way Open vSwitch would send them (register moves in NXM encoding, port names NUL-padded)
    and parsed back with os-ken's own parser, so the app sees what it would see from a real switch.

Timing: like os-ken, a reply is *queued*, not handled inside send_msg(); `Lab.pump()` delivers
queued events until nothing more happens. REST calls that wait for flow-stats replies run in a
worker thread while the test's thread keeps pumping (os-ken also serves REST on other threads).
"""
from __future__ import annotations

import io
import json
import random
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from minet_sdn.apps import remote_links
from minet_sdn.compat import handler, ofp_event
from minet_sdn.compat import ofproto_v1_3 as ofp
from minet_sdn.compat import ofproto_v1_3_parser as parser
from minet_sdn.rest.api import make_app
from minet_sdn.topology.model import Topology
from os_ken.lib import addrconv
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_parser

from tests.fakeswitch import FakeFabric, FakeSwitch, Packet, ipv4

MAIN, DEAD = handler.MAIN_DISPATCHER, handler.DEAD_DISPATCHER
TUNNEL = 1

_NXM_NAMES = {f.name for f in nicira_ext.oxm_types}


# ---- what the app, IXP-segment and core tests share -----------------------------------------

MODES = ("key", "tos")


def _servers(count: int) -> str:
    return "servers:\n" + "".join(f"  VM{i}: {{underlay_ip: 192.0.2.{i}}}\n" for i in range(1, count + 1))


def three_servers(name: str, rest: str) -> str:
    """A topology template named `name` on servers VM1..VM3 (underlay 192.0.2.1-3), followed by
    `rest` (its ases, links, ixps): `template % mode` sets the isolation mode."""
    return f"name: {name}\nfabric: {{isolation: %s}}\n" + _servers(3) + rest


def two_servers(name: str, rest: str) -> str:
    """A topology named `name` on servers VM1 and VM2 (underlay 192.0.2.1-2; default fabric),
    followed by `rest` (its ases and links)."""
    return f"name: {name}\n" + _servers(2) + rest


ONE_LINK = """\
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
"""


def one_link_lab(tmp_path, name: str) -> "Lab":
    """Two servers, AS 1 and AS 2 with one router each, one remote link: the REST door's tests."""
    return Lab(tmp_path, two_servers(name, ONE_LINK))


def shared_labs(tmp_path_factory, template: str) -> Callable[[str], "Lab"]:
    """get(mode): one Lab per isolation mode of `template`, made on first use and reused (for
    module-scoped fixtures of tests that change nothing but counters); each use checks that the
    lab still shows no problem."""
    labs: Dict[str, Lab] = {}

    def get(mode: str) -> Lab:
        if mode not in labs:
            labs[mode] = Lab(tmp_path_factory.mktemp(mode), template % mode)
        lab = labs[mode]
        assert lab.problems() == []
        return lab
    return get


def carried(mode: str, pkt: Packet) -> Packet:
    """A frame as it leaves the far port: untouched in key mode; DSCP cleared in tos mode."""
    return pkt.replace(ip_dscp=0) if mode == "tos" and "ip_dscp" in pkt else pkt


def from_tunnel(topo: Topology, mode: str, bridge, other: int, frame: Packet) -> Tuple[Packet, List[int]]:
    """`frame` as it arrives on `bridge` from the tunnel marked for link (or segment) `other`
    (key mode: its tunnel key, with a DSCP of the routers' own; tos mode: its DSCP mark), and the
    ids of the bridge's links it may leave by: `other` itself, or in tos mode whatever shares its mark."""
    if mode == "key":
        return frame.replace(tunnel_id=other, ip_dscp=46), [other] if other in bridge.link_ids else []
    mark = topo.link_marks[other]
    return frame.replace(ip_dscp=mark), [lid for lid in bridge.link_ids if topo.link_marks[lid] == mark]


def inject_from_tunnel(lab: "Lab", mode: str, server: str, peer: str, other: int,
                       frame: Optional[Packet] = None) -> Tuple[list, list, List[int]]:
    """`frame` of link (or segment) `other` (default: an IPv4 packet from its a end to its b end)
    arriving from the tunnel on `server`'s bridge towards `peer`, marked as `from_tunnel` marks it:
    (where it left, as `lab.where` gives it; where it should leave: the ports of the links its mark
    names, the frame `carried`; those links' ids)."""
    if frame is None:
        a, b = lab.topo.link(other).a, lab.topo.link(other).b
        frame = ipv4(a.mac, b.mac, a.ip, b.ip)
    tagged, targets = from_tunnel(lab.topo, mode, lab.topo.bridge(server, peer), other, frame)
    sw = lab.bridge_switch(server, peer)
    leaving = carried(mode, tagged.replace(tunnel_id=None))
    want = [(lab.label(sw), lab.topo.link(lid).ofport, leaving) for lid in targets]
    return lab.where(lab.inject(server, peer, tagged)), want, targets


# ---- building the app ----------------------------------------------------------------------

def build_app(topology_path, state_path=None) -> remote_links.RemoteLinks:
    """The real app, constructed like os-ken's AppManager does (no arguments that matter), with
    its event handlers registered; start() is never called (it would open the REST listener).
    Its persistent state goes next to the topology file, never to the machine's state dir."""
    saved = dict(remote_links.CONFIG)
    remote_links.CONFIG["topology"] = str(topology_path)
    remote_links.CONFIG["state"] = str(state_path or Path(topology_path).with_name("controller-state.json"))
    try:
        app = remote_links.RemoteLinks()
    finally:
        remote_links.CONFIG.clear()
        remote_links.CONFIG.update(saved)
    handler.register_instance(app)
    return app


def hw_addr(server_index: int, peer_index: int, port_no: int) -> str:
    """A distinct MAC for every port of every bridge."""
    return "0a:00:{:02x}:{:02x}:{:02x}:{:02x}".format(server_index, peer_index, port_no >> 8, port_no & 0xFF)


# ---- the wire, switch -> controller ----------------------------------------------------------

def _frame(msg_type: int, body: bytes, xid: int) -> bytes:
    return struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, msg_type, 8 + len(body), xid) + body


def _as_ovs(action):
    """Open vSwitch reports a register move in NXM encoding where the field has one."""
    if isinstance(action, parser.NXActionRegMove):
        src, dst = (f + "_nxm" if f + "_nxm" in _NXM_NAMES else f for f in (action.src_field, action.dst_field))
        return parser.NXActionRegMove(src_field=src, dst_field=dst, n_bits=action.n_bits,
                                      src_ofs=action.src_ofs, dst_ofs=action.dst_ofs)
    return action


def _instruction_bytes(inst) -> bytes:
    buf = bytearray()
    if isinstance(inst, parser.OFPInstructionActions):
        inst = parser.OFPInstructionActions(inst.type, [_as_ovs(a) for a in inst.actions])
    inst.serialize(buf, 0)
    return bytes(buf)


def flow_stats_bytes(stats: parser.OFPFlowStats) -> bytes:
    buf = bytearray(ofp.OFP_FLOW_STATS_0_SIZE)
    stats.match.serialize(buf, len(buf))
    for inst in stats.instructions:
        buf += _instruction_bytes(inst)
    struct.pack_into(ofp.OFP_FLOW_STATS_0_PACK_STR, buf, 0, len(buf), stats.table_id, stats.duration_sec,
                     stats.duration_nsec, stats.priority, stats.idle_timeout, stats.hard_timeout,
                     stats.flags, stats.cookie, stats.packet_count, stats.byte_count)
    return bytes(buf)


def port_bytes(port: parser.OFPPort) -> bytes:
    return struct.pack(ofp.OFP_PORT_PACK_STR, port.port_no, addrconv.mac.text_to_bin(port.hw_addr), port.name,
                       port.config, port.state, port.curr, port.advertised, port.supported, port.peer,
                       port.curr_speed, port.max_speed)


def multipart_reply_bytes(mp_type: int, entries: List[bytes], xid: int, more: bool) -> bytes:
    flags = ofp.OFPMPF_REPLY_MORE if more else 0
    return _frame(ofp.OFPT_MULTIPART_REPLY,
                  struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, mp_type, flags) + b"".join(entries), xid)


def port_status_bytes(status: parser.OFPPortStatus, xid: int = 0) -> bytes:
    return _frame(ofp.OFPT_PORT_STATUS, struct.pack(ofp.OFP_PORT_STATUS_PACK_STR[:4], status.reason)
                  + port_bytes(status.desc), xid)


def packet_in_bytes(data: bytes, in_port: int, reason: int = ofp.OFPR_ACTION, table_id: int = 0,
                    cookie: int = 0, xid: int = 0, match: Optional[parser.OFPMatch] = None) -> bytes:
    match = match if match is not None else parser.OFPMatch(in_port=in_port)
    buf = bytearray(struct.pack(ofp.OFP_PACKET_IN_PACK_STR, ofp.OFP_NO_BUFFER, len(data), reason, table_id, cookie))
    match.serialize(buf, len(buf))
    return _frame(ofp.OFPT_PACKET_IN, bytes(buf) + b"\0\0" + data, xid)


def error_bytes(type_: int, code: int, data: bytes, xid: int = 0) -> bytes:
    return _frame(ofp.OFPT_ERROR, struct.pack(ofp.OFP_ERROR_MSG_PACK_STR, type_, code) + data, xid)


# ---- the datapath ----------------------------------------------------------------------------

_EVENTS = {
    parser.OFPFlowStatsReply: ofp_event.EventOFPFlowStatsReply,
    parser.OFPAggregateStatsReply: ofp_event.EventOFPAggregateStatsReply,
    parser.OFPPortDescStatsReply: ofp_event.EventOFPPortDescStatsReply,
    parser.OFPPortStatus: ofp_event.EventOFPPortStatus,
    parser.OFPPacketIn: ofp_event.EventOFPPacketIn,
    parser.OFPErrorMsg: ofp_event.EventOFPErrorMsg,
}


class FakeDatapath:
    """Looks enough like os_ken.controller.controller.Datapath for the app: one per connection."""

    def __init__(self, lab: "Lab", switch: FakeSwitch, xid: int = 0):
        self.lab = lab
        self.switch = switch
        self.id = switch.dpid
        self.ofproto = ofp
        self.ofproto_parser = parser
        self.xid = xid
        self.state = MAIN
        self.wire: List[bytes] = []          # every message sent, as serialized
        self.parts = 0                       # >0: split multipart replies into parts of that many entries
        self.mute_stats = False              # True: never answer a flow stats request
        self.after_reply: Optional[Callable[[Any], None]] = None   # called once a stats reply is queued
        self.lost_stats: List[Tuple[int, list]] = []   # (xid, body) of stats requests left unanswered
        self.bundles: Dict[int, list] = {}   # open bundles: id -> [(FlowMod, its bytes)]
        self.bundle_log: List[Tuple[int, int, int]] = []   # (exp_type, bundle id, xid) of bundle messages

    def set_xid(self, msg) -> int:
        self.xid = (self.xid + 1) & ofp.MAX_XID
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg, close_socket: bool = False) -> None:
        assert isinstance(msg, parser.MsgBase), msg
        assert msg.datapath is self, "the app must attach a message to the datapath it sends it on"
        if self.state == DEAD:
            return                             # the connection is gone: the message is lost
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()                        # raises if the message is not valid OpenFlow
        self.wire.append(bytes(msg.buf))
        with self.lab.mutex:
            body = self.switch.apply(msg)
            self.lab.collect(self.switch, offending=msg)
            if isinstance(msg, parser.OFPFlowStatsRequest):
                if self.mute_stats:
                    self.lost_stats.append((msg.xid, body))
                else:
                    self.reply(ofp.OFPMP_FLOW, [flow_stats_bytes(s) for s in body or []], msg.xid)
            elif isinstance(msg, parser.OFPPortDescStatsRequest):
                self.reply(ofp.OFPMP_PORT_DESC, [port_bytes(p) for p in body], msg.xid)
            elif isinstance(msg, parser.OFPAggregateStatsRequest):
                if self.mute_stats:
                    return
                self.reply(ofp.OFPMP_AGGREGATE, [struct.pack(ofp.OFP_AGGREGATE_STATS_REPLY_PACK_STR, 0, 0, body)],
                           msg.xid)
            else:
                return
            if self.after_reply:
                self.after_reply(msg)

    def send(self, buf: bytes, close_socket: bool = False) -> bool:
        """Raw bytes, as os-ken's Datapath.send takes them (the app packs many messages into one
        write): split them into messages, parse each as a switch would, and apply them in order."""
        assert isinstance(buf, (bytes, bytearray)) and buf, buf
        offset = 0
        while offset < len(buf):
            version, msg_type, length, xid = struct.unpack_from("!BBHI", buf, offset)
            assert version == ofp.OFP_VERSION and length >= 8 and offset + length <= len(buf), (offset, length)
            raw = bytes(buf[offset:offset + length])
            if msg_type == ofp.OFPT_EXPERIMENTER:
                self._bundle_msg(raw, xid)
                offset += length
                continue
            if msg_type == ofp.OFPT_FLOW_MOD:
                msg = ofproto_parser.msg(self, version, msg_type, length, xid, raw)
            elif msg_type == ofp.OFPT_PORT_MOD:
                port_no, hw, config, mask, advertise = struct.unpack_from("!I4x6s2xIII4x", raw, 8)
                msg = parser.OFPPortMod(self, port_no, ":".join(f"{b:02x}" for b in hw), config, mask, advertise)
            elif msg_type == ofp.OFPT_BARRIER_REQUEST:
                msg = parser.OFPBarrierRequest(self)
            elif msg_type == ofp.OFPT_MULTIPART_REQUEST and struct.unpack_from("!H", raw, 8)[0] == ofp.OFPMP_AGGREGATE:
                msg = parser.OFPAggregateStatsRequest(self, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                                      parser.OFPMatch())
            else:
                raise AssertionError(f"unexpected message type {msg_type} in a packed send")
            msg.xid = xid
            self.send_msg(msg)
            assert self.wire[-1] == raw, "re-serialising what the switch parsed gives other bytes"
            offset += length
        return True

    def _bundle_msg(self, raw: bytes, xid: int) -> None:
        """ONF bundles (OpenFlow 1.3 extension): FlowMods held from OPEN and applied at COMMIT."""
        experimenter, exp_type, bundle_id = struct.unpack_from("!III", raw, 8)
        assert experimenter == 0x4F4E4600, f"unexpected experimenter {experimenter:#x}"
        self.bundle_log.append((exp_type, bundle_id, xid))
        if exp_type == ofp.ONF_ET_BUNDLE_CONTROL:
            ctrl, flags = struct.unpack_from("!HH", raw, 20)
            assert flags == ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
            if ctrl == ofp.ONF_BCT_OPEN_REQUEST:
                assert bundle_id not in self.bundles, f"bundle {bundle_id} opened twice"
                self.bundles[bundle_id] = []
            else:
                assert ctrl == ofp.ONF_BCT_COMMIT_REQUEST, ctrl
                if self.state == DEAD:
                    return
                for msg, inner in self.bundles.pop(bundle_id):       # KeyError: never opened
                    self.send_msg(msg)
                    assert self.wire[-1] == inner, "re-serialising a bundled message gives other bytes"
            return
        assert exp_type == ofp.ONF_ET_BUNDLE_ADD_MESSAGE, exp_type
        inner = raw[24:]
        version, msg_type, length, inner_xid = struct.unpack_from("!BBHI", inner, 0)
        assert msg_type == ofp.OFPT_FLOW_MOD and length == len(inner) and inner_xid == xid
        msg = ofproto_parser.msg(self, version, msg_type, length, inner_xid, inner)
        msg.xid = inner_xid
        self.bundles[bundle_id].append((msg, inner))

    def reply(self, mp_type: int, entries: List[bytes], xid: int) -> None:
        size = self.parts or max(1, len(entries))
        chunks = [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]
        for n, chunk in enumerate(chunks):
            self.lab.receive(self, multipart_reply_bytes(mp_type, chunk, xid, more=n < len(chunks) - 1))


# ---- the lab ---------------------------------------------------------------------------------

class Lab:
    """One FakeSwitch per remote bridge of a topology, peers joined by tunnels, all connected to
    the real app. Tunnel port 1, link L's port 100 + L, distinct hw addrs."""

    def __init__(self, tmp_path: Path, yaml_text: str, seed: int = 1, parts: int = 0):
        path = self.path = Path(tmp_path) / "topology.yaml"
        path.write_text(yaml_text)
        self.app = build_app(path)
        self.topo: Topology = self.app.topo
        self.rng = random.Random(seed)
        self.parts = parts
        self.expected: set = set()           # problem kinds a test provokes on purpose (see problems())
        self.mutex = threading.RLock()
        self.queue: deque = deque()          # (datapath, raw bytes) or (event, state)
        self.switches: Dict[int, FakeSwitch] = {}
        self.dps: Dict[int, FakeDatapath] = {}
        self._seen: Dict[int, Dict[str, int]] = {}
        self.fabric = FakeFabric()
        for dpid, bridge in self.topo.bridges.items():
            si, pi = self.topo.servers[bridge.server].index, self.topo.servers[bridge.peer].index
            ports = {TUNNEL: hw_addr(si, pi, TUNNEL)}
            names = {TUNNEL: bridge.tunnel_port}
            for lid in bridge.link_ids:
                port = self.topo.link(lid).ofport
                ports[port] = hw_addr(si, pi, port)
                names[port] = self.topo.link_port_name(lid)
            self.add_switch(FakeSwitch(dpid, ports, tunnel_ports=(TUNNEL,), names=names))
        for dpid, bridge in self.topo.bridges.items():
            peer = self.topo.peer_bridge(bridge).dpid
            if dpid < peer:
                self.fabric.connect(self.switches[dpid], TUNNEL, self.switches[peer], TUNNEL)
        for dpid in self.topo.bridges:
            self.connect(dpid)
        self.pump()

    # ---- topology helpers ---------------------------------------------------------------------
    def bridge_switch(self, server: str, peer: str) -> FakeSwitch:
        return self.switches[self.topo.dpid(server, peer)]

    def ends(self, link_id: int, server: str):
        """(near endpoint, far endpoint, near switch, far switch) of remote link `link_id` seen from `server`."""
        link = self.topo.link(link_id)
        near, far = link.side(server), link.far(server)
        assert near.server == server and far.server != server, (link_id, server)
        return near, far, self.bridge_switch(server, far.server), self.bridge_switch(far.server, server)

    def switch_of(self, server: str, link_id: int) -> FakeSwitch:
        return self.ends(link_id, server)[2]

    # ---- connections --------------------------------------------------------------------------
    def add_switch(self, switch: FakeSwitch) -> FakeSwitch:
        self.switches[switch.dpid] = switch
        self._seen[switch.dpid] = {"port_status": len(switch.port_status), "packet_ins": len(switch.packet_ins),
                                   "errors": len(switch.errors)}
        return switch

    def connect(self, dpid: int) -> FakeDatapath:
        """A new connection from the switch: a new Datapath reaching MAIN_DISPATCHER."""
        self.collect(self.switches[dpid])        # what happened while it was away is not reported
        dp = FakeDatapath(self, self.switches[dpid], xid=self.rng.randrange(ofp.MAX_XID))
        dp.parts = self.parts
        self.dps[dpid] = dp
        self.state_change(dp, MAIN)
        return dp

    def disconnect(self, dpid: int) -> FakeDatapath:
        dp = self.dps.pop(dpid)
        self.state_change(dp, DEAD)
        return dp

    def state_change(self, dp: FakeDatapath, state: str) -> None:
        dp.state = state
        ev = ofp_event.EventOFPStateChange(dp)
        ev.state = state
        self.queue.append((ev, state))

    def restart_controller(self) -> None:
        """A new controller process (same topology and state file); every switch connects to it."""
        self.app = build_app(self.path)
        for dpid in self.topo.bridges:
            self.connect(dpid)
        self.pump()

    def reconnect(self, dpid: int, dead_first: bool = True) -> FakeDatapath:
        """The switch reconnects; os-ken may report the old connection dead before or after the new one is up."""
        old = self.dps[dpid]
        if dead_first:
            self.disconnect(dpid)
            self.pump()
            new = self.connect(dpid)
        else:
            new = self.connect(dpid)
            self.pump()
            self.state_change(old, DEAD)
        self.pump()
        return new

    # ---- events -------------------------------------------------------------------------------
    def receive(self, dp: FakeDatapath, raw: bytes) -> None:
        """Bytes from the switch: parsed by os-ken when their turn comes, as on its receive thread."""
        self.queue.append((dp, raw))

    def collect(self, switch: FakeSwitch, offending: Any = None) -> None:
        """Turn what a switch did since last time (port changes, packet-ins, errors) into messages."""
        with self.mutex:
            seen = self._seen[switch.dpid]
            dp = self.dps.get(switch.dpid)
            for status in switch.port_status[seen["port_status"]:]:
                if dp:
                    self.receive(dp, port_status_bytes(status))
            for pin in switch.packet_ins[seen["packet_ins"]:]:
                if dp:
                    self.receive(dp, packet_in_bytes(b"", pin.in_port, pin.reason, pin.table_id, pin.cookie))
            for err in switch.errors[seen["errors"]:]:
                if dp:
                    data = bytes(err.msg.buf[:64]) if getattr(err.msg, "buf", None) else b""
                    self.receive(dp, error_bytes(err.type, err.code, data, getattr(err.msg, "xid", 0) or 0))
            seen.update(port_status=len(switch.port_status), packet_ins=len(switch.packet_ins),
                        errors=len(switch.errors))

    def _event(self, dp: FakeDatapath, raw: bytes):
        version, msg_type, msg_len, xid = ofproto_parser.header(raw)
        msg = ofproto_parser.msg(dp, version, msg_type, msg_len, xid, raw)
        assert msg is not None, f"os-ken could not parse {raw!r}"
        return _EVENTS[type(msg)](msg)

    def dispatch(self, ev, state: str) -> None:
        """Deliver one event the way os-ken's event loop does: every handler interested in `state`."""
        for h in list(self.app.get_handlers(ev, state)):
            h(ev)

    def pump(self, limit: int = 10000) -> int:
        """Deliver queued events until nothing more happens; returns how many were delivered."""
        n = 0
        while True:
            for sw in list(self.switches.values()):
                self.collect(sw)
            with self.mutex:
                if not self.queue:
                    return n
                item = self.queue.popleft()
            n += 1
            if n > limit:
                raise RuntimeError("events keep coming: a feedback loop between the app and the switches?")
            first, second = item
            if isinstance(first, FakeDatapath):
                self.dispatch(self._event(first, second), first.state)
            else:
                self.dispatch(first, second)

    def message(self, dpid: int, raw: bytes) -> None:
        """Hand raw bytes from switch `dpid` to the app now."""
        self.receive(self.dps[dpid], raw)
        self.pump()

    def packet_in(self, dpid: int, data: bytes, in_port: int = TUNNEL, **kw) -> None:
        self.message(dpid, packet_in_bytes(data, in_port, **kw))

    def error(self, dpid: int, type_: int, code: int, data: bytes = b"") -> None:
        self.message(dpid, error_bytes(type_, code, data))

    # ---- the data path ------------------------------------------------------------------------
    def send(self, server: str, link_id: int, packet: Packet, preset_tunnel_id: Optional[int] = None):
        """`packet` from the router of `link_id` on `server`, into its port: every
        (switch, port, packet) by which it leaves on a non-tunnel port, anywhere.

        `preset_tunnel_id`: pretend the frame already carried that tunnel metadata (OvS zeroes it
        on a veth, and FakeSwitch.process() refuses it, so the first hop goes under that guard)."""
        near, far, sw, _ = self.ends(link_id, server)
        port = self.topo.link(link_id).ofport
        if preset_tunnel_id is None:
            out = self.fabric.deliver(sw, port, packet)
        else:
            out = []
            first: List[Tuple[int, Packet]] = []
            if sw.ports[port].usable:
                sw._pipeline(port, {**packet, "tunnel_id": preset_tunnel_id}, first)
            for out_port, pkt in first:
                if out_port == TUNNEL:
                    out += self.fabric.deliver(self.switches[self.topo.dpid(far.server, server)], TUNNEL, pkt)
                else:
                    out.append((sw, out_port, pkt.replace(tunnel_id=None)))
        self.pump()
        return out

    def inject(self, server: str, peer: str, packet: Packet):
        """`packet` arriving from the tunnel on `server`'s bridge towards `peer` (set tunnel_id for a key)."""
        sw = self.bridge_switch(server, peer)
        out = [(sw, port, pkt) for port, pkt in sw.process(TUNNEL, packet)]
        self.pump()
        return out

    # ---- ports --------------------------------------------------------------------------------
    def carrier(self, server: str, link_id: int, up: bool) -> None:
        self.switch_of(server, link_id).set_link(self.topo.link(link_id).ofport, up)
        self.pump()

    def tunnel(self, server: str, peer: str, live: bool) -> None:
        self.bridge_switch(server, peer).set_link(TUNNEL, live)
        self.pump()

    def remove_port(self, server: str, link_id: int) -> str:
        sw = self.switch_of(server, link_id)
        port = self.topo.link(link_id).ofport
        hw = sw.ports[port].hw_addr
        sw.remove_port(port)
        self.pump()
        return hw

    def add_port(self, server: str, link_id: int, hw: str) -> None:
        self.switch_of(server, link_id).add_port(self.topo.link(link_id).ofport, hw,
                                                 name=self.topo.link_port_name(link_id))
        self.pump()

    # ---- calls that wait for the switches (REST) ----------------------------------------------
    def call(self, fn: Callable, *args, timeout: float = 20.0):
        """Run `fn(*args)` on a worker thread (as os-ken serves REST) while this thread delivers events."""
        result: Dict[str, Any] = {}

        def run():
            try:
                result["value"] = fn(*args)
            except BaseException as exc:       # re-raised in the test's thread
                result["error"] = exc

        worker = threading.Thread(target=run, name="lab-call", daemon=True)
        worker.start()
        deadline = time.monotonic() + timeout
        while worker.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"{fn} did not return within {timeout}s")
            if not self.pump():
                worker.join(0.0005)
        self.pump()
        if "error" in result:
            raise result["error"]
        return result["value"]

    def wsgi(self, method: str, path: str, body: bytes = b"",
             csrf: bool = True) -> Tuple[int, Dict[str, str], bytes]:
        """One request through make_app(app), environ built by hand (a POST with our clients'
        X-Minet header unless `csrf` is False)."""
        wsgi_app = make_app(self.app)
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "test",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0),
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
                   "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
                   "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json" if body else ""}
        if csrf and method == "POST":
            environ["HTTP_X_MINET"] = "1"
        if csrf and method != "GET":            # and the controller's token, as our clients send it
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.app.rest_token}"
        started: Dict[str, Any] = {}

        def start_response(status, headers, exc_info=None):
            started["status"], started["headers"] = status, headers
            return lambda data: None

        chunks = self.call(lambda: list(wsgi_app(environ, start_response)))
        data = b"".join(chunks)
        code = int(started["status"].split()[0])
        headers = dict(started["headers"])
        assert int(headers["Content-Length"]) == len(data)
        return code, headers, data

    def get_json(self, path: str):
        code, headers, data = self.wsgi("GET", path)
        assert code == 200, (path, code, data)
        assert headers["Content-Type"] == "application/json"
        return json.loads(data)

    # ---- state --------------------------------------------------------------------------------
    def table(self, dpid: int) -> set:
        """A switch's table as comparable values (counters left out)."""
        return {(e.table_id, e.priority, tuple(sorted(e.match.items())), e.cookie, str(e.instructions))
                for e in self.switches[dpid].flows}

    def tables(self) -> Dict[int, set]:
        return {dpid: self.table(dpid) for dpid in self.topo.bridges}

    def mark(self) -> Dict[int, int]:
        """Where each switch's message log stands, for `sent_since`."""
        return {dpid: len(sw.sent) for dpid, sw in self.switches.items()}

    def sent_since(self, mark: Dict[int, int], cls: type = object, **attrs) -> Dict[int, list]:
        out = {}
        for dpid, sw in self.switches.items():
            msgs = [m for m in sw.sent[mark.get(dpid, 0):]
                    if isinstance(m, cls) and all(getattr(m, k) == v for k, v in attrs.items())]
            if msgs:
                out[dpid] = msgs
        return out

    def label(self, switch: FakeSwitch) -> str:
        bridge = self.topo.bridges.get(switch.dpid)
        return f"{bridge.server}>{bridge.peer}" if bridge else f"{switch.dpid:016x}"

    def where(self, outputs) -> List[Tuple[str, int, Packet]]:
        """send()/inject() results with readable switch names."""
        return [(self.label(sw), port, pkt) for sw, port, pkt in outputs]

    def problems(self, ignore=()) -> List[str]:
        """What must never happen in a healthy run (kinds in `ignore` are expected by the test):
        switch_error, switch_packet_in, handler_error, packet_in, error, flush, undelivered."""
        out = []
        for dpid, sw in self.switches.items():
            if "switch_error" not in ignore:
                out += [f"{dpid:016x} refused {type(e.msg).__name__}: {e.reason}" for e in sw.errors]
            if "switch_packet_in" not in ignore:
                out += [f"{dpid:016x} sent a packet-in: {p}" for p in sw.packet_ins]
            if "flush" not in ignore:
                out += [f"{dpid:016x} got a non-strict delete of {m.match}" for m in sw.sent
                        if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_DELETE]
        for key in ("handler_error", "packet_in", "error"):
            if self.app.extra[key] and key not in ignore:
                out.append(f"app counted {self.app.extra[key]} {key}")
        if self.queue and "undelivered" not in ignore:
            out.append(f"{len(self.queue)} events never delivered")
        return out
