"""Which addressing plan a mini-Internet folder's `subnet_config.sh` describes.

The script is not run: its functions are read as text and the address templates they echo are
compared with the two plans minet-sdn follows (`topology/addressing.py`, plan `mini-internet`):

  mini-internet        (2020 on) loopback X.(151+i).0.1, default inter-AS subnet 179.(n/100).(n%100).0/24
  mini-internet-2019   (platform/config of 2019) loopback X.(201+i).0.1, default 179.24.(n+1).0/24

and, in both, AS X owns X.0.0.0/8, router i's host network is X.(101+i).0.0/24 (host .1, router .2),
intra-AS link n is X.0.(n+1).0/24 (its first router .1, the second .2), IXP N's LAN is 180.N.0.0/24
(route server .N, member AS X .X), and layer-2 network `id` VLAN v is X.(200+id).v.0/24. A folder
whose script numbers any of these otherwise is refused with one line naming the function: following
it silently with other numbers would contradict the handouts written against it.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from . import ImportProblem, read_input

SCRIPT = "subnet_config.sh"
DEFAULT_PLAN = "mini-internet"
PLAN_2019 = "mini-internet-2019"

# function -> templates (normalised echo lines) that must all appear in it
COMMON: Dict[str, Tuple[str, ...]] = {
    "subnet_group": ("${n_grp}.0.0.0/8",),
    "subnet_host_router": ("${n_grp}.$(($n_router+101)).0.1/24", "${n_grp}.$(($n_router+101)).0.2/24"),
    "subnet_router_router_intern": ("${n_grp}.0.$((${n_net}+1)).1/24", "${n_grp}.0.$((${n_net}+1)).2/24"),
    "subnet_router_IXP": ("180.${n_ixp}.0.${n_grp}/24", "180.${n_ixp}.0.${n_ixp}/24"),
}
L2 = "${n_grp}.$((200+$l2_id)).$vlan.$n_host/24"      # in subnet_l2 (2020 on) or subnet_l2_router (2019)
PLANS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    DEFAULT_PLAN: {"subnet_router": ("${n_grp}.$(($n_router+151)).0.1/24",),
                   "subnet_router_router_extern": ("179.${div}.${mod}.1/24", "179.${div}.${mod}.2/24")},
    PLAN_2019: {"subnet_router": ("${n_grp}.$(($n_router+201)).0.1/24",),
                "subnet_router_router_extern": ("179.24.$((${n_net}+1)).1/24", "179.24.$((${n_net}+1)).2/24")},
}


def _functions(text: str) -> Dict[str, Tuple[int, List[str]]]:
    """function name -> (its line, its normalised echo arguments)."""
    out: Dict[str, Tuple[int, List[str]]] = {}
    current: Optional[str] = None
    for number, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\(\)\s*\{?", line)
        if m:
            current = m.group(1)
            out[current] = (number, [])
            continue
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for arg in re.findall(r"\becho\s+([^;]*)", code) if current else ():
            arg = arg.split("1>&2")[0]
            arg = re.sub(r"\s+", "", arg).replace('"', "").replace("'", "")
            arg = arg.replace("netmask255.255.255.0", "/24").replace("netmask255.255.0.0", "/16")
            out[current][1].append(arg)
    return out


def read_plan(folder: str) -> Optional[str]:
    """The plan the folder's subnet_config.sh describes (DEFAULT_PLAN when it has none); raises
    ImportProblem with one line when it describes another."""
    path = os.path.join(folder, SCRIPT)
    if not os.path.isfile(path):
        return DEFAULT_PLAN
    text = read_input(path, SCRIPT, 1 << 20).decode("utf-8", "replace")
    funcs = _functions(text)

    def differs(name: str, wanted: Tuple[str, ...]) -> Optional[str]:
        if name not in funcs:
            return f"{SCRIPT}: has no function {name} (the mini-Internet's plan needs it)"
        line, echoes = funcs[name]
        for template in wanted:
            if template not in echoes:
                return (f"{SCRIPT}: line {line}: {name} differs from the mini-Internet's default plan "
                        f"(expected an address {template}); minet-sdn follows that plan and its 2019 variant only")
        return None

    for name, wanted in COMMON.items():
        problem = differs(name, wanted)
        if problem:
            raise ImportProblem([problem])
    l2_fn = "subnet_l2" if "subnet_l2" in funcs else "subnet_l2_router"
    problem = differs(l2_fn, (L2,))
    if problem:
        raise ImportProblem([problem])
    first: Optional[str] = None
    for plan, wanted in PLANS.items():
        problems = [differs(n, t) for n, t in wanted.items()]
        if not any(problems):
            return plan
        first = first or next(x for x in problems if x)
    raise ImportProblem([first or f"{SCRIPT}: not a plan minet-sdn follows"])
