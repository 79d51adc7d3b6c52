"""Plain flow values <-> os-ken OpenFlow 1.3 messages.

Messages are built with datapath=None (as Faucet does) and only attached to a datapath when sent,
so the core stays free of sockets and the tests can feed the very same objects to a fake switch.
FlowMods are PackedFlowMods (core/wire.py): os-ken messages that serialise fast.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

from ..compat import ofproto_v1_3 as ofp
from ..compat import ofproto_v1_3_parser as parser

from ..topology.model import COOKIE_MAGIC, COOKIE_MAGIC_MASK
from . import ofconv
from .flows import Flow
from .wire import PackedFlowMod

# the other direction, os-ken messages -> plain values, lives in ofconv.py; the shell reads switch
# replies through here
flow_from_stats, instructions = ofconv.flow_from_stats, ofconv.instructions


def flow_add(flow: Flow) -> parser.OFPFlowMod:
    return PackedFlowMod(flow, ofp.OFPFC_ADD)


def flow_delete(flow: Flow) -> parser.OFPFlowMod:
    """Delete exactly this flow (strict: same match and priority), whatever its cookie."""
    return PackedFlowMod(flow, ofp.OFPFC_DELETE_STRICT)


def port_mod(port_no: int, hw_addr: str, down: bool) -> parser.OFPPortMod:
    return parser.OFPPortMod(None, port_no=port_no, hw_addr=hw_addr,
                             config=ofp.OFPPC_PORT_DOWN if down else 0, mask=ofp.OFPPC_PORT_DOWN,
                             advertise=0)


def barrier() -> parser.OFPBarrierRequest:
    return parser.OFPBarrierRequest(None)


def port_desc_request() -> parser.OFPPortDescStatsRequest:
    return parser.OFPPortDescStatsRequest(None, 0)


def flow_stats_request(ours_only: bool = False) -> parser.OFPFlowStatsRequest:
    """All flows of every table (to find strays too), or only ours (for counters)."""
    cookie, mask = (COOKIE_MAGIC, COOKIE_MAGIC_MASK) if ours_only else (0, 0)
    return parser.OFPFlowStatsRequest(None, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                      cookie, mask, parser.OFPMatch())


def aggregate_request() -> parser.OFPAggregateStatsRequest:
    """How many flows the switch holds, all tables, any cookie (the periodic audit: one small
    request and reply, however big the table)."""
    return parser.OFPAggregateStatsRequest(None, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                           parser.OFPMatch())


def kind(msg) -> Optional[str]:
    """Short name of a message, for logs and counters."""
    return _kind(type(msg))


@lru_cache(maxsize=None)
def _kind(msg_cls: type) -> str:
    cls = next((c for c in msg_cls.__mro__ if c.__module__ == parser.__name__), msg_cls)
    return cls.__name__.replace("OFP", "")     # a PackedFlowMod counts as a FlowMod
