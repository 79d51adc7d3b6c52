"""Reading what `ovs-vsctl --format=json list TABLE ...` prints: the server's Open vSwitch
(ovs.py) and the ASes' layer-2 instances (layer2.py) are read the same way. Pure."""
from __future__ import annotations

import json
from typing import Any, Dict, List


def atom(value: Any) -> Any:
    """An OVSDB JSON value as Python: sets as lists, maps as dicts, uuids as strings."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, data = value
        if kind == "set":
            return [atom(v) for v in data]
        if kind == "map":
            return {atom(k): atom(v) for k, v in data}
        if kind in ("uuid", "named-uuid"):
            return data
    return value


def as_list(value: Any) -> list:
    """A column that holds a set: one value is printed bare, several as a list."""
    return value if isinstance(value, list) else [value]


def tables(out: str) -> List[List[Dict[str, Any]]]:
    """The rows of each table listed, in the order of the `list` commands (one JSON doc a line)."""
    found = []
    for line in out.splitlines():
        if line.strip():
            doc = json.loads(line)
            found.append([{h: atom(v) for h, v in zip(doc["headings"], row)} for row in doc["data"]])
    return found
