"""Importers: other projects' topology descriptions in, a minet-sdn topology (a plain dict, then YAML) out.

Each importer returns an `Imported` (the topology dict and notes for the user) or raises ImportProblem
with one line per problem naming the file, line and column or key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List

import yaml

from ..errors import UserError

NAME_MAX = 12


class ImportProblem(UserError):
    """The input cannot be imported; `problems` holds one line per problem (`FILE: line N: ...`)."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def read_input(path: str, label: str, limit: int) -> bytes:
    """The bytes of an input file, at most `limit` of them; ImportProblem (one line) otherwise."""
    try:
        if os.path.getsize(path) > limit:
            raise ImportProblem([f"{label}: larger than {limit // (1024 * 1024)} MiB"])
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImportProblem([f"{label}: cannot read: {exc.strerror or exc}"]) from None


@dataclass
class Imported:
    topology: Dict[str, Any]
    notes: List[str] = field(default_factory=list)
    # key path in the topology -> "FILE: line N[, column C]" of the input it came from, so a
    # problem the loader finds in the written topology is reported against the source (`locate`)
    origins: Dict[str, str] = field(default_factory=dict)


def locate(problems: List[str], origins: Dict[str, str], label: str) -> List[str]:
    """Loader problems (`LABEL: KEY.PATH: message`) re-pointed at the input line a key came from:
    the longest key-path prefix with an origin wins; others keep the YAML key path."""
    if not origins:
        return problems
    out = []
    for line in problems:
        head = f"{label}: "
        if not line.startswith(head):
            out.append(line)
            continue
        key, sep, message = line[len(head):].partition(": ")
        best = None
        for prefix in origins:
            if (key == prefix or key.startswith(prefix + ".") or key.startswith(prefix + "[")) and \
                    (best is None or len(prefix) > len(best)):
                best = prefix
        out.append(f"{origins[best]}: {message} ({key})" if best and sep else line)
    return out


def instance_name(text: str) -> str:
    """A topology name (1-12 of a-z, 0-9, '-', no '-' at the ends) made from any text."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:NAME_MAX].strip("-")
    return name or "imported"


def to_yaml(topology: Dict[str, Any]) -> str:
    """The topology as YAML: one line per link and per small mapping, in a readable key order."""
    out: List[str] = []

    def flow(value: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10 ** 6).strip()
        return text[:-3].strip() if text.endswith("\n...") else text

    for key, value in topology.items():
        if key in ("servers", "ases", "ixps") and isinstance(value, dict):
            out.append(f"{key}:")
            for k, v in value.items():
                if isinstance(v, dict) and ("links" in v or "members" in v or "services" in v
                                            or "imported_layer2" in v):
                    out.append(f"  {flow(k)}:")
                    for kk, vv in v.items():
                        if kk in ("links", "members") and isinstance(vv, list):
                            out.append(f"    {kk}:")
                            out.extend(f"      - {flow(item)}" for item in vv)
                        elif kk in ("services", "imported_layer2") and isinstance(vv, dict):
                            out.append(f"    {kk}:")
                            for k3, v3 in vv.items():
                                if isinstance(v3, list) and v3 and isinstance(v3[0], dict):
                                    out.append(f"      {flow(k3)}:")
                                    out.extend(f"        - {flow(item)}" for item in v3)
                                else:
                                    out.append(f"      {flow(k3)}: {flow(v3)}")
                        else:
                            out.append(f"    {kk}: {flow(vv)}")
                else:
                    out.append(f"  {flow(k)}: {flow(v)}")
        elif key == "links" and isinstance(value, list):
            out.append("links:")
            out.extend(f"  - {flow(item)}" for item in value)
        else:
            out.append(f"{key}: {flow(value)}")
    return "\n".join(out) + "\n"
