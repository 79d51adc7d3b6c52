"""Plain flow values <-> os-ken objects: actions and instructions of a flow we build, and a flow
read back from a switch in the same form. Used by ofmsg.py (messages) and wire.py (encoding), so
neither imports the other.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Tuple

from ..compat import ofproto_v1_3 as ofp
from ..compat import ofproto_v1_3_parser as parser

from .flows import IN_PORT, Action, Flow

_SYMBOLIC_PORTS = {IN_PORT: ofp.OFPP_IN_PORT}
_PORT_NAMES = {v: k for k, v in _SYMBOLIC_PORTS.items()}


def _action(action: Action):
    kind = action[0]
    if kind == "output":
        return parser.OFPActionOutput(_SYMBOLIC_PORTS.get(action[1], action[1]))
    if kind == "set_field":
        return parser.OFPActionSetField(**{action[1]: action[2]})
    if kind == "move":
        return parser.NXActionRegMove(src_field=action[1], dst_field=action[2], n_bits=action[3])
    raise ValueError(f"unknown action {action!r}")


def instructions(actions: Iterable[Action]) -> list:
    acts = [_action(a) for a in actions]
    return [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, acts)] if acts else []


def _canonical(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    return value


def _oxm_name(field: str) -> str:
    return field[:-4] if field.endswith("_nxm") else field


def action_from_ofp(action) -> Action:
    if isinstance(action, parser.OFPActionOutput):
        return ("output", _PORT_NAMES.get(action.port, action.port))
    if isinstance(action, parser.OFPActionSetField):
        return ("set_field", action.key, _canonical(action.value))
    if isinstance(action, parser.NXActionRegMove) and action.src_ofs == 0 and action.dst_ofs == 0:
        # Open vSwitch answers with the NXM encoding of the same field ("eth_src_nxm")
        return ("move", _oxm_name(action.src_field), _oxm_name(action.dst_field), action.n_bits)
    return ("unknown", repr(action))      # never equal to a flow of ours: it gets replaced


def flow_from_stats(stats) -> Flow:
    """A flow as read back from a switch, in the same form as the flows we build."""
    flow = getattr(stats, "flow", None)
    if flow is not None:
        return flow                          # decoded from the wire already (wire.WireFlowStats)
    match: List[Tuple[str, Any]] = []
    for name, value in stats.match.items():
        if isinstance(value, tuple):
            value = tuple(_canonical(v) for v in value)
        match.append((name, _canonical(value)))
    actions: List[Action] = []
    for inst in stats.instructions:
        if isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS:
            actions.extend(action_from_ofp(a) for a in inst.actions)
        else:
            actions.append(("unknown", repr(inst)))
    return Flow(priority=stats.priority, match=tuple(sorted(match)), actions=tuple(actions),
                cookie=stats.cookie, table_id=stats.table_id)
