"""The looking glass: read-only vtysh `show` commands on any router, for people without a shell.

`check_command` is the allow-list (pure): a command is allowed only when it is `show` followed by
one of the families below, and every word is plain (letters, digits and `.:/_-`; no pipes, no
quotes, no second command). Anything else is refused with a one-line reason. `run_lg` runs an
allowed command on a router where its place says (`vtysh -c`, topology/places.py).
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from ..errors import UserError
from ..topology import Topology
from ..topology.places import Places, node_id

MAX_LEN = 200
WORD = re.compile(r"^[A-Za-z0-9.:/_-]+$")

# `show` + one of these word sequences (+ anything plain after it)
ALLOWED: Tuple[Tuple[str, ...], ...] = (
    ("bgp",),                        # show bgp summary | show bgp ipv4 unicast [PREFIX] | neighbors ...
    ("ip", "bgp"),
    ("ip", "route"),
    ("ip", "ospf"),
    ("ip", "nht"),
    ("ipv6", "route"),
    ("ipv6", "bgp"),
    ("ipv6", "ospf6"),
    ("interface",),
    ("bfd", "peers"),
    ("route-map",),
    ("version",),
)

# read-only but not for students: configuration may hold secrets
DENIED_WORDS = ("running-config", "startup-config", "running", "startup", "config")


class Refused(UserError, ValueError):
    """A command the looking glass does not run; str() is the one-line reason."""


def allowed_forms() -> List[str]:
    return ["show " + " ".join(words) + " ..." for words in ALLOWED]


def check_command(command: str) -> List[str]:
    """The command's words if it is allowed, else raises Refused."""
    if not isinstance(command, str) or not command.strip():
        raise Refused("empty command")
    if len(command) > MAX_LEN:
        raise Refused(f"command longer than {MAX_LEN} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in command):
        raise Refused("control characters (newlines, tabs) are not allowed: one command per request")
    words = command.split()
    for w in words:
        if not WORD.match(w):
            raise Refused(f"{w!r}: only letters, digits and . : / _ - are allowed in a word "
                          f"(no pipes, quotes, or second commands)")
    lowered = [w.lower() for w in words]
    if lowered[0] != "show":
        raise Refused(f"{words[0]!r}: only `show` commands are allowed (read-only looking glass)")
    for w in lowered[1:]:
        if w in DENIED_WORDS:
            raise Refused(f"{w!r}: the configuration is not shown by the looking glass")
    rest = tuple(lowered[1:])
    for family in ALLOWED:
        if rest[:len(family)] == family:
            return words
    raise Refused(f"`{command.strip()}` is not on the allow-list; allowed: "
                  + ", ".join("show " + " ".join(f) for f in ALLOWED))


def resolve_router(topo: Topology, target: str, router: Optional[str] = None) -> str:
    """The router id `<asn>.<NAME>` meant by an ASN (its first router, or `router` of it) or an id."""
    if target in topo.routers:
        return target
    if not target.isdigit() or int(target) not in topo.ases:
        raise Refused(f"{target!r} is neither an AS number nor a router of {topo.name} "
                      f"(ASes: {', '.join(str(a) for a in sorted(topo.ases))})")
    as_ = topo.ases[int(target)]
    name = router or as_.routers[0]
    if name not in as_.routers:
        raise Refused(f"AS {as_.asn} has no router {name} (routers: {', '.join(as_.routers)})")
    return node_id(as_.asn, name)


def run_lg(places: Places, router: str, command: str, timeout: float = 15.0) -> Tuple[int, str]:
    """(exit code, output) of an allowed `show` command on a router at `places`; Refused when not allowed."""
    from . import nodes
    words = check_command(command)
    if router not in places.topo.routers:
        raise Refused(f"no router {router} in {places.topo.name}")
    argv = nodes.vtysh_argv(places, router, " ".join(words))
    rc, out, err = nodes.run(argv, timeout=timeout)
    return rc, out if rc == 0 else (out + err)
