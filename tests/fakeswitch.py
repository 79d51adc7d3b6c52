"""A fake OpenFlow 1.3 switch for unit tests: no root, no sockets, no Open vSwitch.

`FakeSwitch.apply()` takes the very os-ken message objects the controller sends (OFPFlowMod,
OFPPortMod, OFPPacketOut, ...), keeps flow tables and port state as OpenFlow 1.3 and Open vSwitch
do, and `FakeSwitch.process()` pushes a header-only `Packet` through the tables to show where a
frame goes and what it looks like when it leaves. `FakeFabric` joins switches with tunnels.

What a real switch would refuse (bad hw_addr, a match or action without its prerequisites, a
bad table id, ...) is recorded in `FakeSwitch.errors` like the error a switch returns, and the
message has no effect. What this fake does not model (action sets, groups, meters, VLANs, other
message types) raises NotImplementedError or TypeError, so a test never passes by accident.

Not modelled: timeouts (entries never expire), TTLs, buffering, flow-removed messages, the LOCAL
port (list it in `ports` if a test needs it). Every tunnel port behaves like a GRE/VXLAN port with
options:key=flow: the frame it sends carries the current tunnel_id as its key.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

from os_ken.lib.packet import arp as os_arp
from os_ken.lib.packet import ether_types
from os_ken.lib.packet import ethernet as os_ethernet
from os_ken.lib.packet import icmp as os_icmp
from os_ken.lib.packet import icmpv6 as os_icmpv6
from os_ken.lib.packet import ipv4 as os_ipv4
from os_ken.lib.packet import ipv6 as os_ipv6
from os_ken.lib.packet import packet as os_packet
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

ETH_ARP = ether_types.ETH_TYPE_ARP
ETH_IPV4 = ether_types.ETH_TYPE_IP
ETH_IPV6 = ether_types.ETH_TYPE_IPV6
ETH_MPLS = ether_types.ETH_TYPE_MPLS
BROADCAST = "ff:ff:ff:ff:ff:ff"
N_TABLES = 254                       # Open vSwitch has tables 0..253
NO_COOKIE = 0xFFFFFFFFFFFFFFFF       # cookie of a packet-in that no flow entry caused (OvS)

_FIELD_BYTES = {t.name: t.type.size for t in ofp.oxm_types}
# Fields that do not use every bit of their OXM encoding.
_FIELD_BITS = {"ip_dscp": 6, "ip_ecn": 2, "vlan_vid": 13, "vlan_pcp": 3, "ipv6_flabel": 20,
               "mpls_label": 20, "mpls_tc": 3, "mpls_bos": 1, "pbb_isid": 24, "ipv6_exthdr": 9}
# Where the frame arrived, not something it carries: given to process(), never part of a Packet.
_PIPELINE_FIELDS = ("in_port", "in_phy_port", "metadata")
# Metadata that every frame has: a frame without it reads as 0.
_ZERO_DEFAULT = ("tunnel_id", "metadata")

# OpenFlow 1.3 match field prerequisites: a field may only be matched, set or moved when the match
# pins the field it depends on (exactly) to one of these values; a switch refuses the flow otherwise.
_IP = (ETH_IPV4, ETH_IPV6)
_PREREQS: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    **{f: ("eth_type", _IP) for f in ("ip_dscp", "ip_ecn", "ip_proto")},
    **{f: ("eth_type", (ETH_IPV4,)) for f in ("ipv4_src", "ipv4_dst")},
    **{f: ("eth_type", (ETH_ARP,)) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
    **{f: ("eth_type", (ETH_IPV6,)) for f in ("ipv6_src", "ipv6_dst", "ipv6_flabel", "ipv6_exthdr")},
    **{f: ("eth_type", (ETH_MPLS, 0x8848)) for f in ("mpls_label", "mpls_tc", "mpls_bos")},   # unicast, multicast
    **{f: ("ip_proto", (6,)) for f in ("tcp_src", "tcp_dst", "tcp_flags")},
    **{f: ("ip_proto", (17,)) for f in ("udp_src", "udp_dst")},
    **{f: ("ip_proto", (132,)) for f in ("sctp_src", "sctp_dst")},
    **{f: ("ip_proto", (1,)) for f in ("icmpv4_type", "icmpv4_code")},
    **{f: ("ip_proto", (58,)) for f in ("icmpv6_type", "icmpv6_code")},
    "ipv6_nd_target": ("icmpv6_type", (135, 136)),
    "ipv6_nd_sll": ("icmpv6_type", (135,)),
    "ipv6_nd_tll": ("icmpv6_type", (136,)),
}


# ---- field values ---------------------------------------------------------------------------

def _bits(name: str) -> int:
    if name not in _FIELD_BYTES:
        raise ValueError(f"unknown OXM field {name!r}")
    return _FIELD_BITS.get(name, 8 * _FIELD_BYTES[name])


def _to_int(name: str, value: Any) -> int:
    """A field value as os-ken takes it ('AA:bb:..', '10.0.0.1', 7) as an unsigned integer."""
    _bits(name)
    _, raw, _ = ofp.oxm_from_user(name, value)
    return int.from_bytes(raw, "big")


def _from_int(name: str, number: int) -> Any:
    """The canonical os-ken form of a field value: lowercase MAC, compressed IPv6, int."""
    raw = number.to_bytes(_FIELD_BYTES[name], "big")
    return ofp.oxm_to_user(ofp.oxm_from_user_header(name), raw, None)[1]


def _canonical(name: str, value: Any) -> Any:
    if isinstance(value, tuple):
        raise ValueError(f"{name}: a packet field has one value, not a (value, mask) pair")
    number = _to_int(name, value)
    if number >> _bits(name):
        raise ValueError(f"{name}={value!r} does not fit in {_bits(name)} bits")
    return _from_int(name, number)


def _full_mask(name: str) -> int:
    return (1 << _bits(name)) - 1


Constraint = Tuple[int, Optional[int]]      # (value, mask); mask None: every bit must be equal


def _constraint(name: str, value: Any) -> Constraint:
    """One field of an OFPMatch as (value, mask); an all-ones mask is the same as no mask."""
    if not isinstance(value, tuple):
        return _to_int(name, value), None
    number, mask = _to_int(name, value[0]), _to_int(name, value[1])
    if mask == _full_mask(name):
        return number, None
    return number & mask, mask


# ---- packets --------------------------------------------------------------------------------

class Packet(Mapping):
    """The header fields of a frame, by os-ken OXM name, in canonical form; immutable and hashable.

    `in_port` is not a header field: it is where `process()` receives the frame. `tunnel_id` is
    the key a frame received on (or leaving) a tunnel port carries; absent means 0.
    """
    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any] = (), **more: Any):
        merged = {**dict(fields), **more}
        clean = {}
        for name, value in merged.items():
            if name in _PIPELINE_FIELDS:
                raise ValueError(f"{name} is pipeline state, not a header field: pass in_port to process()")
            value = _canonical(name, value)
            if not (name in _ZERO_DEFAULT and value == 0):
                clean[name] = value
        self._fields = clean

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __hash__(self) -> int:
        return hash(frozenset(self._fields.items()))

    def __repr__(self) -> str:
        return "Packet({})".format(", ".join(f"{k}={v!r}" for k, v in self._fields.items()))

    def replace(self, **changes: Any) -> "Packet":
        """A copy with some fields changed; a field given as None is removed."""
        fields = dict(self._fields)
        for name, value in changes.items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        return Packet(fields)

    @property
    def size(self) -> int:
        """Nominal frame length in bytes, what byte counters add up: the headers described here
        plus an 8-byte L4 header (24 more for a neighbour discovery target), padded to Ethernet's
        60-byte minimum. The fake has no payloads, so this only needs to be deterministic."""
        l3 = {ETH_ARP: 28, ETH_IPV4: 20 + 8, ETH_IPV6: 40 + 8}.get(self.get("eth_type"), 0)
        if "ipv6_nd_target" in self:
            l3 += 24
        return max(60, 14 + l3)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Packet":
        """The header fields of a serialized frame (as a controller puts in an OFPPacketOut)."""
        pkt = os_packet.Packet(data)
        eth = pkt.get_protocol(os_ethernet.ethernet)
        fields: Dict[str, Any] = {"eth_src": eth.src, "eth_dst": eth.dst, "eth_type": eth.ethertype}
        arp = pkt.get_protocol(os_arp.arp)
        if arp:
            fields.update(arp_op=arp.opcode, arp_spa=arp.src_ip, arp_tpa=arp.dst_ip,
                          arp_sha=arp.src_mac, arp_tha=arp.dst_mac)
        ip4 = pkt.get_protocol(os_ipv4.ipv4)
        if ip4:
            fields.update(ipv4_src=ip4.src, ipv4_dst=ip4.dst, ip_proto=ip4.proto,
                          ip_dscp=ip4.tos >> 2, ip_ecn=ip4.tos & 3)
        ip6 = pkt.get_protocol(os_ipv6.ipv6)
        if ip6:
            fields.update(ipv6_src=ip6.src, ipv6_dst=ip6.dst, ip_proto=ip6.nxt,
                          ip_dscp=ip6.traffic_class >> 2, ip_ecn=ip6.traffic_class & 3)
        icmp4 = pkt.get_protocol(os_icmp.icmp)
        if icmp4:
            fields.update(icmpv4_type=icmp4.type, icmpv4_code=icmp4.code)
        icmp6 = pkt.get_protocol(os_icmpv6.icmpv6)
        if icmp6:
            fields.update(icmpv6_type=icmp6.type_, icmpv6_code=icmp6.code)
            if icmp6.type_ in (os_icmpv6.ND_NEIGHBOR_SOLICIT, os_icmpv6.ND_NEIGHBOR_ADVERT):
                fields["ipv6_nd_target"] = icmp6.data.dst
                option = icmp6.data.option
                if isinstance(option, os_icmpv6.nd_option_sla):
                    fields["ipv6_nd_sll"] = option.hw_src
                elif isinstance(option, os_icmpv6.nd_option_tla):
                    fields["ipv6_nd_tll"] = option.hw_src
        return cls(fields)


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> Packet:
    return Packet(eth_src=src_mac, eth_dst=BROADCAST, eth_type=ETH_ARP, arp_op=1,
                  arp_sha=src_mac, arp_spa=src_ip, arp_tha="00:00:00:00:00:00", arp_tpa=target_ip)


def arp_reply(src_mac: str, src_ip: str, dst_mac: str, dst_ip: str) -> Packet:
    return Packet(eth_src=src_mac, eth_dst=dst_mac, eth_type=ETH_ARP, arp_op=2,
                  arp_sha=src_mac, arp_spa=src_ip, arp_tha=dst_mac, arp_tpa=dst_ip)


def ipv4(src_mac: str, dst_mac: str, src: str, dst: str, dscp: int = 0, proto: int = 1) -> Packet:
    """An IPv4 frame; with the default protocol, an ICMP echo request (ping)."""
    icmp = {"icmpv4_type": 8, "icmpv4_code": 0} if proto == 1 else {}
    return Packet(eth_src=src_mac, eth_dst=dst_mac, eth_type=ETH_IPV4, ipv4_src=src, ipv4_dst=dst,
                  ip_proto=proto, ip_dscp=dscp, ip_ecn=0, **icmp)


def ipv6(src_mac: str, dst_mac: str, src: str, dst: str, dscp: int = 0, proto: int = 58) -> Packet:
    """An IPv6 frame; with the default protocol, an ICMPv6 echo request (ping)."""
    icmp = {"icmpv6_type": 128, "icmpv6_code": 0} if proto == 58 else {}
    return Packet(eth_src=src_mac, eth_dst=dst_mac, eth_type=ETH_IPV6, ipv6_src=src, ipv6_dst=dst,
                  ip_proto=proto, ip_dscp=dscp, ip_ecn=0, **icmp)


def ipv6_ns(src_mac: str, src_ip6: str, target_ip6: str) -> Packet:
    """A neighbour solicitation for `target_ip6`, sent to its solicited-node multicast group."""
    low24 = _to_int("ipv6_dst", target_ip6) & 0xFFFFFF
    group = _from_int("ipv6_dst", (0xFF02 << 112) | (1 << 32) | (0xFF << 24) | low24)
    group_mac = _from_int("eth_dst", (0x3333 << 32) | (0xFF << 24) | low24)
    return ipv6(src_mac, group_mac, src_ip6, group).replace(
        icmpv6_type=135, ipv6_nd_target=target_ip6, ipv6_nd_sll=src_mac)


def raw_frame(src_mac: str, dst_mac: str, eth_type: int) -> Packet:
    """A frame whose payload the switch does not parse, e.g. MPLS (0x8847)."""
    return Packet(eth_src=src_mac, eth_dst=dst_mac, eth_type=eth_type)


# ---- switch state ---------------------------------------------------------------------------

class SwitchError(NamedTuple):
    """What a real switch would answer with an OFPErrorMsg (same `type` and `code`)."""
    msg: Any
    type: int
    code: int
    reason: str


class PacketIn(NamedTuple):
    in_port: int
    packet: Packet
    reason: int            # OFPR_NO_MATCH from a table-miss entry, else OFPR_ACTION
    table_id: int
    cookie: int


class _Refused(Exception):
    """A message a real switch refuses with an error; the fake records it in `errors`."""

    def __init__(self, type_: int, code: int, reason: str):
        super().__init__(reason)
        self.type, self.code, self.reason = type_, code, reason


@dataclass
class FlowEntry:
    table_id: int
    priority: int
    match: Dict[str, Constraint]
    instructions: list
    cookie: int
    flags: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    packet_count: int = 0
    byte_count: int = 0

    def ofp_match(self) -> parser.OFPMatch:
        """The match as a switch reports it: canonical values, masks only where given."""
        fields = {}
        for name, (value, mask) in self.match.items():
            user = _from_int(name, value)
            fields[name] = user if mask is None else (user, _from_int(name, mask))
        return parser.OFPMatch(**fields)

    def actions(self) -> Iterator[Any]:
        for inst in self.instructions:
            if isinstance(inst, parser.OFPInstructionActions):
                yield from inst.actions

    def outputs_to(self, port_no: int) -> bool:
        return any(isinstance(a, parser.OFPActionOutput) and a.port == port_no for a in self.actions())

    @property
    def is_table_miss(self) -> bool:
        return self.priority == 0 and not self.match

    def stats(self) -> parser.OFPFlowStats:
        return parser.OFPFlowStats(table_id=self.table_id, duration_sec=0, duration_nsec=0,
                                   priority=self.priority, idle_timeout=self.idle_timeout,
                                   hard_timeout=self.hard_timeout, flags=self.flags, cookie=self.cookie,
                                   packet_count=self.packet_count, byte_count=self.byte_count,
                                   match=self.ofp_match(), instructions=list(self.instructions))


@dataclass
class _Port:
    port_no: int
    hw_addr: str
    name: bytes
    config: int = 0
    state: int = ofp.OFPPS_LIVE

    @property
    def usable(self) -> bool:
        return not (self.config & ofp.OFPPC_PORT_DOWN or self.state & ofp.OFPPS_LINK_DOWN)

    def desc(self) -> parser.OFPPort:
        # Names are bytes, as os-ken parses them from a real switch's reply.
        return parser.OFPPort(port_no=self.port_no, hw_addr=self.hw_addr, name=self.name,
                              config=self.config, state=self.state, curr=0, advertised=0, supported=0,
                              peer=0, curr_speed=0, max_speed=0)


def _covers(request: Dict[str, Constraint], entry: Dict[str, Constraint]) -> bool:
    """Non-strict OpenFlow selection: is every packet `entry` matches also matched by `request`?"""
    for name, (value, mask) in request.items():
        if name not in entry:
            return False
        full = _full_mask(name)
        req_mask, (entry_value, entry_mask) = mask or full, entry[name]
        if (entry_mask or full) & req_mask != req_mask or entry_value & req_mask != value:
            return False
    return True


def _missing_prereq(name: str, match: Dict[str, Constraint]) -> Optional[str]:
    needed = _PREREQS.get(name)
    while needed:
        dep, allowed = needed
        value, mask = match.get(dep, (None, None))
        if value is None or mask is not None or value not in allowed:
            return f"{name} needs a match on {dep} in {[hex(a) if dep == 'eth_type' else a for a in allowed]}"
        needed = _PREREQS.get(dep)
    return None


# ---- the switch -----------------------------------------------------------------------------

class FakeSwitch:
    """One OpenFlow 1.3 datapath. `ports` is {port_no: hw_addr}; every port starts up."""

    def __init__(self, dpid: int, ports: Mapping[int, str], tunnel_ports: Iterable[int] = (),
                 names: Optional[Mapping[int, str]] = None):
        self.dpid = dpid
        self.ports: Dict[int, _Port] = {}
        self.tunnel_ports = set(tunnel_ports)
        self.flows: List[FlowEntry] = []
        self.sent: list = []                          # every message given to apply(), in order
        self.errors: List[SwitchError] = []
        self.packet_ins: List[PacketIn] = []
        self.packet_out_outputs: List[Tuple[int, Packet]] = []
        self.port_status: List[parser.OFPPortStatus] = []
        for port_no, hw_addr in ports.items():
            self.ports[port_no] = _Port(port_no, _canonical("eth_src", hw_addr),
                                        (names or {}).get(port_no, f"port{port_no}").encode())
        if not self.tunnel_ports <= set(self.ports):
            raise ValueError(f"tunnel ports {sorted(self.tunnel_ports - set(self.ports))} are not ports")

    # ---- controller side ------------------------------------------------------------------
    def apply(self, msg: Any) -> Any:
        """Handle one controller message. Returns the reply body of a stats request (a list of
        OFPPort or OFPFlowStats), the outputs of a packet-out, otherwise None."""
        self.sent.append(msg)
        handlers = ((parser.OFPFlowMod, self._flow_mod), (parser.OFPPortMod, self._port_mod),
                    (parser.OFPPacketOut, self._packet_out), (parser.OFPBarrierRequest, lambda m: None),
                    (parser.OFPPortDescStatsRequest, lambda m: [p.desc() for p in self._sorted_ports()]),
                    (parser.OFPFlowStatsRequest, self._flow_stats),
                    (parser.OFPAggregateStatsRequest, self._aggregate))
        for cls, handler in handlers:
            if isinstance(msg, cls):
                try:
                    return handler(msg)
                except _Refused as err:
                    self.errors.append(SwitchError(msg, err.type, err.code, err.reason))
                    return None
        raise TypeError(f"FakeSwitch does not handle {type(msg).__name__}")

    def sent_of(self, cls: type, **attrs: Any) -> list:
        """Messages applied so far of class `cls` whose attributes equal `attrs`,
        e.g. sent_of(parser.OFPFlowMod, command=ofp.OFPFC_DELETE_STRICT)."""
        return [m for m in self.sent
                if isinstance(m, cls) and all(getattr(m, k) == v for k, v in attrs.items())]

    def table(self, table_id: int = 0) -> List[FlowEntry]:
        """The entries of one table, highest priority first."""
        return sorted((e for e in self.flows if e.table_id == table_id), key=lambda e: -e.priority)

    # ---- ports seen from outside (carrier, hot-plug) ----------------------------------------
    def add_port(self, port_no: int, hw_addr: str, name: Optional[str] = None, tunnel: bool = False) -> None:
        if port_no in self.ports:
            raise ValueError(f"port {port_no} exists")
        self.ports[port_no] = _Port(port_no, _canonical("eth_src", hw_addr), (name or f"port{port_no}").encode())
        if tunnel:
            self.tunnel_ports.add(port_no)
        self._port_changed(ofp.OFPPR_ADD, self.ports[port_no])

    def remove_port(self, port_no: int) -> None:
        port = self.ports.pop(port_no)
        self.tunnel_ports.discard(port_no)
        self._port_changed(ofp.OFPPR_DELETE, port)

    def set_link(self, port_no: int, up: bool) -> None:
        """Carrier change, e.g. the far end of a veth going down."""
        port = self.ports[port_no]
        port.state = ofp.OFPPS_LIVE if up and not port.config & ofp.OFPPC_PORT_DOWN else ofp.OFPPS_LINK_DOWN
        self._port_changed(ofp.OFPPR_MODIFY, port)

    def _port_changed(self, reason: int, port: _Port) -> None:
        self.port_status.append(parser.OFPPortStatus(None, reason=reason, desc=port.desc()))

    def _sorted_ports(self) -> List[_Port]:
        return [self.ports[n] for n in sorted(self.ports)]

    # ---- data path ------------------------------------------------------------------------
    def process(self, in_port: int, packet: Packet) -> List[Tuple[int, Packet]]:
        """Receive `packet` on `in_port`; return every (out_port, packet as it leaves), in order.
        Packet-ins go to `packet_ins`. A port that is down receives nothing."""
        if in_port not in self.ports:
            raise ValueError(f"switch {self.dpid:#x} has no port {in_port}")
        if "tunnel_id" in packet and in_port not in self.tunnel_ports:
            raise ValueError(f"port {in_port} is not a tunnel port: a frame on it carries no tunnel_id")
        if not self.ports[in_port].usable:
            return []
        outputs: List[Tuple[int, Packet]] = []
        self._pipeline(in_port, dict(packet), outputs)
        return outputs

    def _pipeline(self, in_port: int, fields: Dict[str, Any], outputs: list) -> None:
        table_id: Optional[int] = 0
        while table_id is not None:
            entry = self._lookup(table_id, in_port, fields)
            if entry is None:
                return                                  # table-miss without a table-miss entry: drop
            entry.packet_count += 1
            entry.byte_count += Packet(fields).size
            table_id = None
            for inst in entry.instructions:             # apply-actions runs before goto-table
                if isinstance(inst, parser.OFPInstructionActions):
                    self._run(inst.actions, in_port, fields, outputs, entry)
            for inst in entry.instructions:
                if isinstance(inst, parser.OFPInstructionGotoTable):
                    table_id = inst.table_id

    def _value(self, name: str, in_port: int, fields: Dict[str, Any]) -> Optional[int]:
        if name == "in_port":
            return in_port
        if name in fields:
            return _to_int(name, fields[name])
        return 0 if name in _ZERO_DEFAULT else None

    def _lookup(self, table_id: int, in_port: int, fields: Dict[str, Any]) -> Optional[FlowEntry]:
        hits = []
        for entry in self.flows:
            if entry.table_id != table_id:
                continue
            for name, (value, mask) in entry.match.items():
                got = self._value(name, in_port, fields)
                if got is None or (got if mask is None else got & mask) != value:
                    break
            else:
                hits.append(entry)
        if not hits:
            return None
        best = max(e.priority for e in hits)
        top = [e for e in hits if e.priority == best]
        if len(top) > 1:
            # OpenFlow leaves the choice undefined; a test must not depend on it.
            raise RuntimeError(f"{len(top)} overlapping entries of priority {best} in table {table_id} "
                               f"match {Packet(fields)}")
        return top[0]

    def _run(self, actions: Iterable[Any], in_port: int, fields: Dict[str, Any], outputs: list,
             entry: Optional[FlowEntry]) -> None:
        """Apply-actions, in order, on `fields` (changed in place). `entry` is None for a packet-out."""
        for action in actions:
            if isinstance(action, parser.OFPActionOutput):
                self._output(action.port, in_port, fields, outputs, entry)
            elif isinstance(action, parser.OFPActionSetField):
                self._set(action.key, _canonical(action.key, action.value), fields)
            elif isinstance(action, parser.NXActionRegMove):
                src = self._value(action.src_field, in_port, fields)
                if src is None:
                    raise RuntimeError(f"move from {action.src_field}, absent from {Packet(fields)}")
                dst = self._value(action.dst_field, in_port, fields) or 0
                bits = (1 << action.n_bits) - 1
                moved = (src >> action.src_ofs) & bits
                dst = (dst & ~(bits << action.dst_ofs)) | (moved << action.dst_ofs)
                self._set(action.dst_field, _from_int(action.dst_field, dst), fields)
            else:
                raise NotImplementedError(f"FakeSwitch does not model {type(action).__name__}")

    @staticmethod
    def _set(name: str, value: Any, fields: Dict[str, Any]) -> None:
        if name in fields or name in _ZERO_DEFAULT:
            fields[name] = value
        else:
            # The prerequisites checked at flow-mod time make this a bug in the test's packet.
            raise RuntimeError(f"cannot set {name}: absent from {Packet(fields)}")

    def _output(self, port_no: int, in_port: int, fields: Dict[str, Any], outputs: list,
                entry: Optional[FlowEntry]) -> None:
        if port_no == ofp.OFPP_CONTROLLER:
            reason = ofp.OFPR_NO_MATCH if entry and entry.is_table_miss else ofp.OFPR_ACTION
            self.packet_ins.append(PacketIn(in_port, Packet(fields), reason,
                                            entry.table_id if entry else ofp.OFPTT_ALL,
                                            entry.cookie if entry else NO_COOKIE))
            return
        if port_no == ofp.OFPP_NORMAL:
            outputs.append((ofp.OFPP_NORMAL, Packet(fields)))
            return
        if port_no == ofp.OFPP_IN_PORT:
            targets = [in_port]
        elif port_no in (ofp.OFPP_FLOOD, ofp.OFPP_ALL):
            targets = [n for n in sorted(self.ports) if n != in_port]
        elif port_no == in_port:
            targets = []            # OpenFlow sends back out of the in-port only via OFPP_IN_PORT
        else:
            targets = [port_no]
        for target in targets:
            port = self.ports.get(target)
            if port is None or not port.usable:
                continue
            leaving = Packet(fields)
            if target not in self.tunnel_ports:
                leaving = leaving.replace(tunnel_id=None)   # only a tunnel carries a key
            outputs.append((target, leaving))

    # ---- flow mods ------------------------------------------------------------------------
    def _match(self, match: parser.OFPMatch) -> Dict[str, Constraint]:
        out = {name: _constraint(name, value) for name, value in match.items()}
        for name in out:
            problem = _missing_prereq(name, out)
            if problem:
                raise _Refused(ofp.OFPET_BAD_MATCH, ofp.OFPBMC_BAD_PREREQ, problem)
        return out

    def _check_instructions(self, msg: parser.OFPFlowMod, match: Dict[str, Constraint]) -> None:
        for inst in msg.instructions:
            if isinstance(inst, parser.OFPInstructionGotoTable):
                if not msg.table_id < inst.table_id < N_TABLES:
                    raise _Refused(ofp.OFPET_BAD_INSTRUCTION, ofp.OFPBIC_BAD_TABLE_ID,
                                   f"goto_table {inst.table_id} from table {msg.table_id}")
            elif isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS:
                for action in inst.actions:
                    self._check_action(action, match)
            else:
                raise NotImplementedError(f"FakeSwitch models apply-actions and goto-table only, not {inst!r}")

    @staticmethod
    def _check_action(action: Any, match: Dict[str, Constraint]) -> None:
        if isinstance(action, parser.OFPActionOutput):
            if action.port in (ofp.OFPP_TABLE, ofp.OFPP_ANY):
                raise _Refused(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_PORT, f"output to {action.port:#x} in a flow")
            return
        if isinstance(action, parser.OFPActionSetField):
            fields = [action.key]
            written = action.key
            try:
                _canonical(action.key, action.value)
            except ValueError as exc:
                raise _Refused(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_SET_ARGUMENT, str(exc)) from None
        elif isinstance(action, parser.NXActionRegMove):
            fields = [action.src_field, action.dst_field]
            written = action.dst_field
            for name, ofs in ((action.src_field, action.src_ofs), (action.dst_field, action.dst_ofs)):
                if ofs + action.n_bits > _bits(name):
                    raise _Refused(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_ARGUMENT,
                                   f"move of {action.n_bits} bits at {ofs} does not fit {name}")
        else:
            raise NotImplementedError(f"FakeSwitch does not model {type(action).__name__}")
        if written in _PIPELINE_FIELDS:
            raise NotImplementedError(f"FakeSwitch does not model writing {written}")
        for name in fields:
            problem = _missing_prereq(name, match)
            if problem:
                raise _Refused(ofp.OFPET_BAD_ACTION, ofp.OFPBAC_MATCH_INCONSISTENT, problem)

    def _select(self, msg: Any, match: Dict[str, Constraint], strict: bool, check_out: bool) -> List[FlowEntry]:
        """Entries a modify/delete/stats request selects: table, cookie under mask, match
        (identical plus same priority when strict, else covered), out_port/out_group for deletes."""
        chosen = []
        for entry in self.flows:
            if msg.table_id != ofp.OFPTT_ALL and entry.table_id != msg.table_id:
                continue
            if entry.cookie & msg.cookie_mask != msg.cookie & msg.cookie_mask:
                continue
            if strict and (entry.priority != msg.priority or entry.match != match):
                continue
            if not strict and not _covers(match, entry.match):
                continue
            if check_out and msg.out_port != ofp.OFPP_ANY and not entry.outputs_to(msg.out_port):
                continue
            if check_out and msg.out_group != ofp.OFPG_ANY:
                continue            # no entry of the fake outputs to a group
            chosen.append(entry)
        return chosen

    def _flow_mod(self, msg: parser.OFPFlowMod) -> None:
        command = msg.command
        if command not in (ofp.OFPFC_ADD, ofp.OFPFC_MODIFY, ofp.OFPFC_MODIFY_STRICT,
                           ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            raise _Refused(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_COMMAND, f"command {command}")
        deleting = command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT)
        if not (msg.table_id < N_TABLES or deleting and msg.table_id == ofp.OFPTT_ALL):
            raise _Refused(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_TABLE_ID, f"table {msg.table_id}")
        if msg.flags & ofp.OFPFF_CHECK_OVERLAP:
            raise NotImplementedError("FakeSwitch does not model OFPFF_CHECK_OVERLAP")
        match = self._match(msg.match)
        if deleting:
            doomed = self._select(msg, match, strict=command == ofp.OFPFC_DELETE_STRICT, check_out=True)
            doomed_ids = {id(e) for e in doomed}
            self.flows = [e for e in self.flows if id(e) not in doomed_ids]
            return
        self._check_instructions(msg, match)
        reset = bool(msg.flags & ofp.OFPFF_RESET_COUNTS)
        if command == ofp.OFPFC_ADD:
            new = FlowEntry(msg.table_id, msg.priority, match, list(msg.instructions), msg.cookie,
                            msg.flags, msg.idle_timeout, msg.hard_timeout)
            for i, old in enumerate(self.flows):
                if (old.table_id, old.priority, old.match) == (new.table_id, new.priority, new.match):
                    # OpenFlow 1.3 6.4: the replaced entry's counters carry over unless RESET_COUNTS.
                    if not reset:
                        new.packet_count, new.byte_count = old.packet_count, old.byte_count
                    self.flows[i] = new
                    return
            self.flows.append(new)
            return
        # MODIFY*: new instructions, same cookie. OpenFlow 1.3 adds nothing when no entry
        # matches (Open vSwitch does add one, as OpenFlow 1.0 did; the controller must not rely on it).
        for entry in self._select(msg, match, strict=command == ofp.OFPFC_MODIFY_STRICT, check_out=False):
            entry.instructions = list(msg.instructions)
            if reset:
                entry.packet_count = entry.byte_count = 0

    # ---- other messages -------------------------------------------------------------------
    def _port_mod(self, msg: parser.OFPPortMod) -> None:
        port = self.ports.get(msg.port_no)
        if port is None:
            raise _Refused(ofp.OFPET_PORT_MOD_FAILED, ofp.OFPPMFC_BAD_PORT, f"no port {msg.port_no}")
        if _canonical("eth_src", msg.hw_addr) != port.hw_addr:
            raise _Refused(ofp.OFPET_PORT_MOD_FAILED, ofp.OFPPMFC_BAD_HW_ADDR,
                           f"port {msg.port_no} is {port.hw_addr}, not {msg.hw_addr}")
        config = (port.config & ~msg.mask) | (msg.config & msg.mask)
        if config == port.config:
            return
        port.config = config
        # Open vSwitch takes a netdev (veth) administratively down: its carrier goes with it.
        port.state = ofp.OFPPS_LINK_DOWN if config & ofp.OFPPC_PORT_DOWN else ofp.OFPPS_LIVE
        self._port_changed(ofp.OFPPR_MODIFY, port)

    def _packet_out(self, msg: parser.OFPPacketOut) -> List[Tuple[int, Packet]]:
        if msg.buffer_id not in (None, ofp.OFP_NO_BUFFER):
            raise NotImplementedError("FakeSwitch buffers no packets: send the data")
        packet = msg.data if isinstance(msg.data, Packet) else Packet.from_bytes(bytes(msg.data))
        fields = dict(packet)
        outputs: List[Tuple[int, Packet]] = []
        for action in msg.actions or []:
            if isinstance(action, parser.OFPActionOutput) and action.port == ofp.OFPP_TABLE:
                self._pipeline(msg.in_port, fields, outputs)
            else:
                self._run([action], msg.in_port, fields, outputs, None)
        self.packet_out_outputs.extend(outputs)
        return outputs

    def _aggregate(self, msg: parser.OFPAggregateStatsRequest) -> int:
        """How many flows an aggregate stats request covers (flow_count)."""
        return len(self._select(msg, self._match(msg.match), strict=False, check_out=True))

    def _flow_stats(self, msg: parser.OFPFlowStatsRequest) -> List[parser.OFPFlowStats]:
        entries = self._select(msg, self._match(msg.match), strict=False, check_out=True)
        return [e.stats() for e in sorted(entries, key=lambda e: (e.table_id, -e.priority))]


# ---- several switches -----------------------------------------------------------------------

class FakeFabric:
    """Switches joined by point-to-point tunnels between their tunnel ports."""

    def __init__(self, max_hops: int = 4):
        self.max_hops = max_hops
        self._far: Dict[Tuple[int, int], Tuple[FakeSwitch, int]] = {}

    def connect(self, sw_a: FakeSwitch, port_a: int, sw_b: FakeSwitch, port_b: int) -> None:
        for sw, port in ((sw_a, port_a), (sw_b, port_b)):
            if port not in sw.tunnel_ports:
                raise ValueError(f"port {port} of switch {sw.dpid:#x} is not a tunnel port")
            if (sw.dpid, port) in self._far:
                raise ValueError(f"port {port} of switch {sw.dpid:#x} is already connected")
        self._far[(sw_a.dpid, port_a)] = (sw_b, port_b)
        self._far[(sw_b.dpid, port_b)] = (sw_a, port_a)

    def deliver(self, switch: FakeSwitch, in_port: int, packet: Packet) -> List[Tuple[FakeSwitch, int, Packet]]:
        """Follow `packet` from `in_port` of `switch` through the tunnels; return every
        (switch, port, packet) by which it leaves on a non-tunnel port. The frame reaches the far
        end as it was sent: header fields (DSCP included) and tunnel_id as key. A frame sent into
        an unconnected tunnel is lost; more than max_hops tunnel crossings raise (a loop)."""
        left: List[Tuple[FakeSwitch, int, Packet]] = []
        pending = [(switch, in_port, packet, 0)]
        while pending:
            sw, port, pkt, hops = pending.pop(0)
            if hops > self.max_hops:
                raise RuntimeError(f"{pkt} crossed more than {self.max_hops} tunnels: a loop?")
            for out_port, out_pkt in sw.process(port, pkt):
                far = self._far.get((sw.dpid, out_port))
                if far:
                    pending.append((far[0], far[1], out_pkt, hops + 1))
                elif out_port not in sw.tunnel_ports:
                    left.append((sw, out_port, out_pkt))
        return left
