"""`minet measure`: traceroute or ping into the mini-Internet from an AS's MEASUREMENT host.

The MEASUREMENT host of AS N is the host of the router the topology gives `measurement`
(topology/services.py), else the host of its first router. The destination is an IPv4/IPv6
address or a DNS name (resolved by the node's resolver, the mini-Internet's DNS when the topology
has one). Pure parts (unit-tested): `check_destination`, `measure_argv`, `measurement_host`;
`run_measure` runs the argv in the node through its exec prefix (a list: no shell ever sees DEST).
The status page can call `run_measure` with the places it already has.
"""
from __future__ import annotations

import ipaddress
import re
from typing import List, Optional, Tuple

from ..errors import UserError
from ..topology import Topology
from ..topology import services
from ..topology.places import Places

TOOLS = ("traceroute", "ping")
MAX_NAME = 253
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


class MeasureError(UserError, ValueError):
    """Bad input: one line."""


def address_or_none(dest: str):
    """`dest` as an IP address, None when it is not one; a scoped IPv6 address is refused (a
    zone index names an interface of the measuring node, not a destination)."""
    try:
        addr = ipaddress.ip_address(dest)
    except ValueError:
        return None
    if addr.version == 6 and getattr(addr, "scope_id", None):
        raise MeasureError(f"destination {dest!r}: a scoped IPv6 address")
    return addr


def check_destination(dest: str) -> Tuple[str, int]:
    """(canonical destination, family) of an address or a DNS name; MeasureError otherwise.

    Family 0 for a name (the tool picks). A name is dot-separated labels of letters, digits, `_`
    and inner `-`, at most 253 characters: nothing a tool could read as an option or a shell as syntax.
    """
    if not isinstance(dest, str) or not dest:
        raise MeasureError("destination: empty")
    addr = address_or_none(dest)
    if addr is not None:
        return str(addr), addr.version
    name = dest[:-1] if dest.endswith(".") else dest
    if len(name) > MAX_NAME or not all(_LABEL.match(label) for label in name.split(".")):
        shown = dest if len(dest) <= 60 else dest[:57] + "..."
        raise MeasureError(f"destination {shown!r}: not an IP address or a DNS name")
    if name.replace(".", "").isdigit():
        raise MeasureError(f"destination {dest!r}: not an IP address or a DNS name")
    return dest, 0


def measure_argv(tool: str, dest: str, family: int = 0, count: int = 3, max_hops: int = 30,
                 numeric: bool = False) -> List[str]:
    """The command run in the measurement host (DEST validated; never a shell)."""
    if tool not in TOOLS:
        raise MeasureError(f"tool {tool!r}: one of {', '.join(TOOLS)}")
    dest, found = check_destination(dest)
    if family not in (0, 4, 6):
        raise MeasureError(f"family {family!r}: 4 or 6")
    if found and family and found != family:
        raise MeasureError(f"destination {dest}: not an IPv{family} address")
    fam = [f"-{family or found}"] if (family or found) else []
    if tool == "ping":
        if not 1 <= count <= 20:
            raise MeasureError(f"--count {count}: 1..20")
        return ["ping", *fam, "-c", str(count), "-W", "2", *(["-n"] if numeric else []), "--", dest]
    if not 1 <= max_hops <= 64:
        raise MeasureError(f"--max-hops {max_hops}: 1..64")
    # one probe per hop, 2 s each: a readable trace that ends in seconds on a healthy lab
    return ["traceroute", *fam, *(["-n"] if numeric else []), "-q", "1", "-w", "2", "-m", str(max_hops), "--", dest]


def measurement_host(topo: Topology, asn: int) -> str:
    """Node id of AS `asn`'s measurement host; MeasureError when there is no such AS."""
    as_ = topo.ases.get(asn)
    if as_ is None:
        raise MeasureError(f"--from {asn}: {topo.name} has no AS {asn}")
    host = services.service_host(as_, services.MEASUREMENT)
    assert host is not None
    return host


def run_measure(places: Places, asn: int, tool: str, dest: str, family: int = 0, count: int = 3,
                max_hops: int = 30, numeric: bool = False, timeout: float = 120.0) -> Tuple[int, str, str]:
    """(exit code, stdout, stderr) of the measurement from AS `asn` (MeasureError on bad input)."""
    from . import nodes
    argv = measure_argv(tool, dest, family, count, max_hops, numeric)
    node = measurement_host(places.topo, asn)
    try:
        full = nodes.exec_argv(places, node, argv)
    except nodes.NodeError as exc:
        raise MeasureError(str(exc)) from None
    return nodes.run(full, timeout=timeout)


def parse_asn(text: str) -> Optional[int]:
    text = text[2:] if text[:2].upper() == "AS" else text
    return int(text) if text.isdigit() and len(text) <= 10 else None
