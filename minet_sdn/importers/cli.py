"""What `minet import mini-internet|gml|as-rel ...` and `minet partition ...` do (their parsers:
cli/importers.py). Every written topology is validated by the topology loader first: a file is
written whole or not at all.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

from ..errors import UserError
from ..files import write_output
from ..topology import TopologyError, parse_topology
from . import Imported, locate, to_yaml


class CommandError(UserError):
    """One or more lines for stderr; exit code 2."""


def positive(value: str) -> int:
    """argparse type of a count (raises CommandError, told by the CLI's top level)."""
    if not value.isdigit() or int(value) < 1:
        raise CommandError(f"minet: {value!r} is not a positive integer")
    return int(value)


def write_topology(topology: Dict[str, Any], out: Optional[str], source: str,
                   origins: Optional[Dict[str, str]] = None) -> str:
    """Validate `topology`, then write it to `out` atomically (stdout when out is None or '-').
    `origins` (Imported.origins) points problems at the input file's lines instead of YAML keys."""
    text = to_yaml(topology)
    label = os.path.basename(out) if out and out != "-" else source
    try:
        parse_topology(text, label)
    except TopologyError as exc:
        raise CommandError("\n".join(locate(exc.problems, origins or {}, label))) from None
    if not out or out == "-":
        sys.stdout.write(text)
        return text
    try:
        write_output(out, text)
    except OSError as exc:
        raise CommandError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return text


def _summary(topology: Dict[str, Any]) -> str:
    ases = topology.get("ases", {})
    routers = sum(len(a["routers"]) for a in ases.values())
    intra = sum(len(a.get("links", [])) if "links" in a else max(0, len(a["routers"]) - (len(a["routers"]) < 3))
                for a in ases.values())
    ixps = topology.get("ixps", {})
    extra = f", {len(ixps)} IXPs ({sum(len(i.get('members', [])) for i in ixps.values())} members)" if ixps else ""
    return (f"{len(ases)} ASes, {routers} routers, {intra} intra-AS links, "
            f"{len(topology.get('links', []))} inter-AS links{extra}, {len(topology.get('servers', []))} servers")


def _place(imported: Imported, servers: Optional[int]) -> None:
    if servers is None:
        return
    from ..topology.partition import place_dict
    report = place_dict(imported.topology, servers)
    imported.notes.append(report)


def _finish(imported: Imported, out: Optional[str], source: str) -> int:
    write_topology(imported.topology, out, source, imported.origins)
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    where = out if out and out != "-" else "stdout"
    print(f"{source}: imported to {where}: {_summary(imported.topology)}", file=sys.stderr)
    return 0


def cmd_import_mini_internet(args) -> int:
    from .mini_internet import import_folder
    imported = import_folder(args.dir, name=args.name)
    _place(imported, args.servers)
    return _finish(imported, args.output, args.dir.rstrip("/"))


def cmd_import_gml(args) -> int:
    from .gml import import_gml
    imported = import_gml(args.file, asn_attr=args.asn_attr, single_as=args.single_as,
                          max_routers=args.max_routers_per_as, rel=args.rel, name=args.name)
    _place(imported, args.servers)
    return _finish(imported, args.output, args.file)


def cmd_import_as_rel(args) -> int:
    from .as_rel import import_as_rel
    imported = import_as_rel(args.file, ases=args.ases, select=args.select, seed=args.seed,
                             routers_per_as=args.routers_per_as, name=args.name)
    _place(imported, args.servers)
    return _finish(imported, args.output, args.file)


def cmd_partition(args) -> int:
    from ..topology.partition import partition_file
    report, topology = partition_file(args.file, args.servers, seed=args.seed)
    if args.output:
        write_topology(topology, args.output, args.file)
    print(report)
    return 0
