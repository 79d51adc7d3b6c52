"""What the controller lets os-ken parse: a pure check of OpenFlow bytes from a switch.

os-ken's parsers walk length fields without checking them: a HELLO element, a multipart entry, an
instruction or an action of length 0 loops forever (and the HELLO one allocates as it spins), and a
connection may send messages of any version and type, each with its own parser. So every message
is checked here before os-ken sees it (minet_sdn.apps.guard wires this in front of os-ken's parser):

  * before the version is agreed, only HELLO is accepted, its elements walked and bounded;
  * afterwards the version must be the agreed one, and only what a switch legitimately sends the
    controller is parsed: ERROR, ECHO, FEATURES_REPLY, PORT_STATUS, PACKET_IN, BARRIER_REPLY and
    the multipart replies the controller asks for (DESC, FLOW, PORT_DESC); every length inside
    them (entries, matches, OXM fields, instructions, actions) must be at least its header and fit
    its container;
  * anything else a switch may send (FLOW_REMOVED, ROLE_REPLY, other multipart replies...) is
    skipped unparsed.

`check()` returns PARSE or SKIP, or raises BadMessage (the connection is then dropped).
No os-ken import: numbers are OpenFlow 1.3's.
"""
from __future__ import annotations

import struct

PARSE, SKIP = "parse", "skip"

OFP13 = 4
HEADER = 8
MAX_HELLO = 1024                # a HELLO is a header and a version bitmap or two

T_HELLO, T_ERROR, T_ECHO_REQUEST, T_ECHO_REPLY = 0, 1, 2, 3
T_FEATURES_REPLY, T_PACKET_IN, T_PORT_STATUS = 6, 10, 12
T_MULTIPART_REPLY, T_BARRIER_REPLY = 19, 21
MP_DESC, MP_FLOW, MP_AGGREGATE, MP_PORT_DESC = 0, 1, 2, 13

IT_GOTO_TABLE, IT_WRITE_METADATA, IT_WRITE_ACTIONS, IT_APPLY_ACTIONS = 1, 2, 3, 4
IT_CLEAR_ACTIONS, IT_METER, IT_EXPERIMENTER = 5, 6, 0xFFFF
AT_EXPERIMENTER, AT_SET_FIELD = 0xFFFF, 25
# os-ken steps over these by their fixed size, whatever the header says, so the header must say it
# (a longer one made it read the rest as further actions: zero lengths, an endless loop).
ACTION_SIZES = {0: 16, 11: 8, 12: 8, 15: 8, 16: 8, 17: 8, 18: 8, 19: 8, 20: 8, 21: 8, 22: 8, 23: 8,
                24: 8, 26: 8, 27: 8}
INSTRUCTION_SIZES = {IT_GOTO_TABLE: 8, IT_WRITE_METADATA: 24, IT_METER: 8}
OXM_CLASS_EXPERIMENTER = 0xFFFF

_U16 = struct.Struct("!H")
_TL = struct.Struct("!HH")
_HEADER = struct.Struct("!BBHI")


class BadMessage(ValueError):
    """Bytes from a switch that os-ken must not parse; the connection is dropped."""


def _round8(n: int) -> int:
    return (n + 7) & ~7


def check(buf: bytes, handshake: bool, version: int = OFP13, flow_entries: bool = True) -> str:
    """PARSE, SKIP or BadMessage for one whole message `buf` (the length its header gives).

    `handshake`: the version is not agreed yet (os-ken's HANDSHAKE_DISPATCHER); `version`: the
    agreed one otherwise. `flow_entries=False`: of a flow-stats reply only the entries' framing
    (each entry's length) is checked here; the caller promises to run `flow_stats_entry` on every
    entry before os-ken parses it (core.wire does, for the few entries its own decoder does not
    cover: walking 30,000 well-formed entries twice was a quarter of a no-op resync)."""
    if len(buf) < HEADER:
        raise BadMessage(f"a message of {len(buf)} bytes is shorter than the OpenFlow header")
    msg_version, msg_type, length, _ = _HEADER.unpack_from(buf)
    if length < HEADER:
        raise BadMessage(f"header length {length} is shorter than the header itself")
    if length != len(buf):
        raise BadMessage(f"header length {length} but {len(buf)} bytes")
    if handshake:
        if msg_type != T_HELLO:
            raise BadMessage(f"message type {msg_type} before the HELLO exchange")
        _hello(buf)
        return PARSE
    if msg_version != version:
        raise BadMessage(f"version 0x{msg_version:02x} on a connection that agreed on 0x{version:02x}")
    if version != OFP13:
        raise BadMessage(f"version 0x{version:02x} is not checked (only OpenFlow 1.3 is)")
    if msg_type == T_MULTIPART_REPLY:
        return _multipart_reply(buf, flow_entries) or PARSE
    checker = _BY_TYPE.get(msg_type)
    if checker is None:
        return SKIP
    return checker(buf) or PARSE


# ---- messages ---------------------------------------------------------------------------------

def _hello(buf: bytes) -> None:
    if len(buf) > MAX_HELLO:
        raise BadMessage(f"a HELLO of {len(buf)} bytes (at most {MAX_HELLO})")
    offset = HEADER
    while offset < len(buf):
        if offset + 4 > len(buf):
            raise BadMessage("a HELLO element header is cut off")
        _, elen = _TL.unpack_from(buf, offset)
        if elen < 4:
            raise BadMessage(f"a HELLO element of length {elen} (at least 4)")
        if offset + elen > len(buf):
            raise BadMessage(f"a HELLO element of length {elen} overruns the message")
        offset += _round8(elen)                 # elements are padded to 8 bytes


def _exact(size: int, what: str):
    def check_exact(buf: bytes) -> None:
        if len(buf) != size:
            raise BadMessage(f"{what} of {len(buf)} bytes (OpenFlow 1.3: {size})")
    return check_exact


def _error(buf: bytes) -> None:
    if len(buf) < 12:
        raise BadMessage(f"ERROR of {len(buf)} bytes (at least 12)")
    if _U16.unpack_from(buf, 8)[0] == 0xFFFF and len(buf) < 16:
        raise BadMessage(f"experimenter ERROR of {len(buf)} bytes (at least 16)")


def _packet_in(buf: bytes) -> None:
    # header, buffer_id, total_len, reason, table_id, cookie: 24 bytes; then the match, 2 pad bytes, data
    end = _match(buf, 24, len(buf), "PACKET_IN")
    if end + 2 > len(buf):
        raise BadMessage("PACKET_IN: no room for the padding after the match")


def _multipart_reply(buf: bytes, flow_entries: bool = True):
    if len(buf) < 16:
        raise BadMessage(f"MULTIPART_REPLY of {len(buf)} bytes (at least 16)")
    mp_type = _U16.unpack_from(buf, 8)[0]
    if mp_type == MP_PORT_DESC:
        if (len(buf) - 16) % 64:
            raise BadMessage(f"PORT_DESC reply body of {len(buf) - 16} bytes (a multiple of 64)")
    elif mp_type == MP_DESC:
        if len(buf) != 16 + 1056:
            raise BadMessage(f"DESC reply of {len(buf)} bytes (OpenFlow 1.3: {16 + 1056})")
    elif mp_type == MP_FLOW:
        _flow_stats(buf, 16, flow_entries)
    elif mp_type == MP_AGGREGATE:              # the flow-table audit's answer
        if len(buf) != 16 + 24:
            raise BadMessage(f"AGGREGATE reply of {len(buf)} bytes (OpenFlow 1.3: {16 + 24})")
    else:
        return SKIP
    return None


_BY_TYPE = {
    T_HELLO: lambda buf: SKIP,                 # only meaningful before the version is agreed
    T_ERROR: _error,
    T_ECHO_REQUEST: lambda buf: None,
    T_ECHO_REPLY: lambda buf: None,
    T_FEATURES_REPLY: _exact(32, "FEATURES_REPLY"),
    T_PORT_STATUS: _exact(80, "PORT_STATUS"),
    T_PACKET_IN: _packet_in,
    T_MULTIPART_REPLY: _multipart_reply,
    T_BARRIER_REPLY: _exact(8, "BARRIER_REPLY"),
}


# ---- structures inside messages ---------------------------------------------------------------

def _flow_stats(buf: bytes, offset: int, entries: bool = True) -> None:
    end = len(buf)
    n = 0
    unpack = _U16.unpack_from
    while offset < end:
        n += 1
        if offset + 56 > end:
            raise BadMessage(f"flow stats entry {n}: {end - offset} bytes left, at least 56 needed")
        length = unpack(buf, offset)[0]
        if length < 56 or offset + length > end:
            raise BadMessage(f"flow stats entry {n}: length {length} (at least 56, within the message)")
        if entries:
            flow_stats_entry(buf, offset, offset + length, f"flow stats entry {n}")
        offset += length


def flow_stats_entry(buf, offset: int, end: int, where: str = "flow stats entry") -> None:
    """Check one ofp_flow_stats entry (`buf[offset:end]`, its framing already checked): its match,
    instructions and actions, every length within its container. BadMessage otherwise."""
    inst = _match(buf, offset + 48, end, where)
    _instructions(buf, inst, end, where)


def _match(buf: bytes, offset: int, limit: int, where: str) -> int:
    """Check the ofp_match at `offset` (ending by `limit`); returns where the padded match ends."""
    if offset + 4 > limit:
        raise BadMessage(f"{where}: no room for a match")
    mtype, mlen = _TL.unpack_from(buf, offset)
    if mtype != 1:
        raise BadMessage(f"{where}: match type {mtype} (OpenFlow 1.3 uses OXM, type 1)")
    if mlen < 4 or offset + _round8(mlen) > limit:
        raise BadMessage(f"{where}: match length {mlen} (at least 4, within its container)")
    _oxm_fields(buf, offset + 4, offset + mlen, where)
    return offset + _round8(mlen)


def _oxm_fields(buf: bytes, offset: int, end: int, where: str) -> None:
    while offset < end:
        if offset + 4 > end:
            raise BadMessage(f"{where}: an OXM field header is cut off")
        oxm_class = _U16.unpack_from(buf, offset)[0]
        plen = buf[offset + 3]
        if oxm_class == OXM_CLASS_EXPERIMENTER and plen < 4:
            raise BadMessage(f"{where}: experimenter OXM field of length {plen} (at least 4)")
        if plen == 0:
            raise BadMessage(f"{where}: OXM field of length 0")
        if offset + 4 + plen > end:
            raise BadMessage(f"{where}: OXM field of length {plen} overruns the match")
        offset += 4 + plen


def _items(buf: bytes, offset: int, end: int, where: str, what: str, container: str):
    """(type, offset, length) of each 8-byte aligned item (an instruction or an action) in
    buf[offset:end]; BadMessage for a cut-off header or a length that is not a multiple of 8, at
    least 8 and within `container`."""
    article = "an" if what[0] in "aeiou" else "a"
    while offset < end:
        if offset + 4 > end:
            raise BadMessage(f"{where}: {article} {what} header is cut off")
        item_type, length = _TL.unpack_from(buf, offset)
        if length < 8 or length % 8 or offset + length > end:
            raise BadMessage(f"{where}: {what} of length {length} (a multiple of 8, at least 8, "
                             f"within {container})")
        yield item_type, offset, length
        offset += length


def _fixed_size(where: str, what: str, item_type: int, length: int, sizes: dict) -> None:
    """An item os-ken steps over by its fixed size: a type it knows, of exactly that size."""
    if item_type not in sizes:
        raise BadMessage(f"{where}: {what} type {item_type} (os-ken cannot read it)")
    if length != sizes[item_type]:
        raise BadMessage(f"{where}: {what} type {item_type} of length {length} (it is {sizes[item_type]})")


def _instructions(buf: bytes, offset: int, end: int, where: str) -> None:
    for itype, ioffset, ilen in _items(buf, offset, end, where, "instruction", "the entry"):
        if itype in (IT_WRITE_ACTIONS, IT_APPLY_ACTIONS, IT_CLEAR_ACTIONS):
            _actions(buf, ioffset + 8, ioffset + ilen, where)
        else:
            _fixed_size(where, "instruction", itype, ilen, INSTRUCTION_SIZES)


def _actions(buf: bytes, offset: int, end: int, where: str) -> None:
    for atype, aoffset, alen in _items(buf, offset, end, where, "action", "its instruction"):
        if atype == AT_EXPERIMENTER:
            if alen < 16:
                raise BadMessage(f"{where}: experimenter action of length {alen} (at least 16)")
        elif atype == AT_SET_FIELD:              # one OXM field, padded
            plen = buf[aoffset + 7]
            if 4 + 4 + plen > alen:
                raise BadMessage(f"{where}: set-field action of length {alen} cannot hold its field")
            _oxm_fields(buf, aoffset + 4, aoffset + 8 + plen, where)
        else:
            _fixed_size(where, "action", atype, alen, ACTION_SIZES)
