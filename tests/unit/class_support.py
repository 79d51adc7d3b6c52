"""What the classroom's unit tests share (test_classroom.py, test_students_page.py): the small
class topology (4 ASes on 2 servers; ASes 3 and 4 are `configure: false` groups, so they get
doors), parsed, and the problems of a bad `class:` section."""
from __future__ import annotations

import textwrap

import pytest

from minet_sdn.topology import TopologyError, parse_topology

FOUR_ASES = textwrap.dedent("""\
    name: {name}
    servers: [VM1, VM2]
    ases:
      1: {{server: VM1, routers: [A1]}}
      2: {{server: VM2, routers: [B1]}}
      3: {{server: VM1, routers: [C1, C2], configure: false}}
      4: {{server: VM2, routers: [D1], configure: false}}
    links:
      - {{a: 1.A1, b: 2.B1, rel: peer}}
      - {{a: 1.A1, b: 3.C1, rel: provider}}
      - {{a: 2.B1, b: 4.D1, rel: provider}}
    """)
IXP = "ixps:\n  100: {server: VM1, members: [1.A1, 2.B1, 3.C2]}\n"


def class_topo(name: str, extra: str = "", ixp: bool = False):
    """The four-AS topology named `name` (its tag too: users are `as3-<name>`), with `extra` (a
    `class:` section...) after it, and an IXP (AS1, AS2 and AS3's C2) when `ixp`."""
    return parse_topology(FOUR_ASES.format(name=name) + (IXP if ixp else "") + extra, "t.yaml")


def class_problems(name: str, extra: str, ixp: bool = False):
    with pytest.raises(TopologyError) as exc:
        class_topo(name, extra, ixp)
    return exc.value.problems
