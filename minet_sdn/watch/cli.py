"""What `minet matrix`, `minet measure`, `minet graph`, `minet lg` do (their parsers: cli/watch.py).

  minet matrix FILE [-6] [--json] [--html OUT] [--watch SECONDS] [--parallel N]
  minet measure FILE --from ASN DEST [--ping] [-4|-6] [-n]
  minet graph FILE -o OUT.svg|png|html|dot [--routers]
  minet lg FILE ASN|ROUTER 'show ...' [--router NAME]

Errors are one line on stderr; bad input (and a refused looking-glass command) exits 2.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Dict, Optional, Tuple

from ..errors import UserError
from ..files import write_output
from ..topology import Topology, TopologyError, load_topology
from ..topology.places import Places


class WatchUsage(UserError):
    """One line for stderr, exit code 2."""


def _topology(path: str) -> Topology:
    try:
        return load_topology(path)
    except TopologyError as exc:
        raise WatchUsage("\n".join(exc.problems))


def rest_base(path: str, topo: Topology) -> str:
    """Where the controller's REST API is reached from here (a lab's relay, else the topology's)."""
    from ..lab.controller import rest_base as lab_rest_base
    return lab_rest_base(topo) or topo.controller.rest_url


def controller_call(path: str, topo: Topology, method: str, url_path: str, body: Any = None,
                    timeout: float = 3.0) -> Optional[Tuple[int, Any]]:
    """(status, decoded answer) from the controller (rest/client.py), or None when it cannot be
    reached or does not answer as the controller does."""
    from ..lab.controller import token_for
    from ..rest.client import ControllerUnreachable, NotOurApi, request
    try:
        return request(rest_base(path, topo), method, url_path, body, timeout=timeout,
                       token=token_for(topo) if method != "GET" else None)
    except (ControllerUnreachable, NotOurApi):
        return None


def _lab(path: str) -> Places:
    """The places of the nodes of the running lab of `path`."""
    from ..lab import LabError, effective, state
    from ..lab.places import lab_places
    try:
        topo = effective.load(path)
        state.require(topo, path)
    except LabError as exc:
        raise WatchUsage(f"minet: {str(exc).splitlines()[0]}")
    return lab_places(topo)


# ---- matrix --------------------------------------------------------------------------------

def _push_matrix(path: str, topo: Topology, m, warned: set) -> bool:
    """Store the round in the controller for the status pages (the TA's and the students'); one
    warning line on stderr when it was not stored (said once per reason, not every round)."""
    answer = controller_call(path, topo, "POST", "/v1/watch/matrix", m.to_record(), timeout=10.0)
    if answer is not None and answer[0] == 200:
        return True
    if answer is None:
        why = "the controller did not answer"
    else:
        detail = answer[1].get("error") if isinstance(answer[1], dict) else answer[1]
        why = f"the controller answered {answer[0]}: {str(detail)[:160]}"
    if why not in warned:
        warned.add(why)
        print(f"minet matrix: warning: the status pages do not show this matrix ({why})", file=sys.stderr)
    return False


def _color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def cmd_matrix(args) -> int:
    from . import matrix as M
    family = 6 if args.ipv6 else 4
    try:
        M.targets(_topology(args.file), family)
    except M.FamilyError as exc:
        raise WatchUsage(f"minet matrix: -6: {exc}")
    if args.watch is not None and args.watch <= 0:
        raise WatchUsage(f"minet matrix: --watch {args.watch:g}: must be a positive number of seconds")
    if args.parallel < 1:
        raise WatchUsage(f"minet matrix: --parallel {args.parallel}: must be at least 1")
    places = _lab(args.file)
    topo = places.topo
    prev = None
    rounds = 0
    warned: set = set()
    try:
        while True:
            m = M.run_matrix(places, parallel=args.parallel, family=family)
            rounds += 1
            if not args.no_push:          # the status page shows the latest round
                _push_matrix(args.file, topo, m, warned)
            if args.html:
                write_output(args.html, M.render_html(m, refresh=args.watch))
            if args.json:
                print(json.dumps(m.to_json()), flush=True)
            elif prev is None:
                print(M.render_grid(m, color=_color()), flush=True)
            else:
                changes = M.diff(prev, m)
                stamp = time.strftime("%H:%M:%S", time.localtime(m.at))
                print(f"[{stamp}] round {rounds}: {m.ok_count}/{m.total} pairs reach, {m.seconds:.1f} s; "
                      + (f"{len(changes)} change(s) since the last round:" if changes else "no change"),
                      flush=True)
                for line in M.summarize_changes(changes):
                    print(f"  {line}")
                if changes:
                    print(M.render_grid(m, color=_color()), flush=True)
            if args.html and args.watch is None:
                print(f"wrote {args.html}", file=sys.stderr)
            if args.watch is None or (args.rounds and rounds >= args.rounds):
                return 0
            prev = m
            time.sleep(max(0.0, args.watch - m.seconds))
    except KeyboardInterrupt:
        return 0


# ---- measure -------------------------------------------------------------------------------

def cmd_measure(args) -> int:
    from . import measure as ME
    asn = ME.parse_asn(args.source)
    if asn is None:
        raise WatchUsage(f"minet measure: --from {args.source!r}: an AS number")
    family = 6 if args.ipv6 else (4 if args.ipv4 else 0)
    topo = _topology(args.file)
    try:
        ME.measure_argv(args.tool, args.dest, family, args.count, args.max_hops, args.numeric)
        ME.measurement_host(topo, asn)
    except ME.MeasureError as exc:
        raise WatchUsage(f"minet measure: {exc}")
    places = _lab(args.file)
    try:
        rc, out, err = ME.run_measure(places, asn, args.tool, args.dest, family, args.count, args.max_hops,
                                      args.numeric)
    except ME.MeasureError as exc:
        raise WatchUsage(f"minet measure: {exc}")
    sys.stdout.write(out)
    if err:
        sys.stderr.write(err if err.endswith("\n") else err + "\n")
    return rc


# ---- graph ---------------------------------------------------------------------------------

def cmd_graph(args) -> int:
    from . import graph as G
    topo = _topology(args.file)
    fmt = args.format or os.path.splitext(args.output)[1].lstrip(".").lower()
    if fmt not in G.FORMATS:
        raise WatchUsage(f"minet graph: {args.output}: unknown format {fmt!r} (use .svg, .png, .html or .dot)")
    states: Optional[Dict[int, str]] = None
    answer = controller_call(args.file, topo, "GET", "/v1/links", timeout=2.0)
    if answer is not None and answer[0] == 200 and isinstance(answer[1], dict):
        states = G.states_from_links(answer[1].get("links", []))
    else:
        print(f"minet graph: link states unknown (controller at {rest_base(args.file, topo)} not reached)",
              file=sys.stderr)
    try:
        data = G.render(topo, fmt, routers=args.routers, states=states)
    except Exception as exc:          # graphviz missing or failing: one line
        raise WatchUsage(f"minet graph: Graphviz failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    with open(args.output, "wb") as fh:
        fh.write(data)
    print(f"wrote {args.output} ({'router' if args.routers else 'AS'} level, {len(data)} bytes)")
    return 0


# ---- looking glass -------------------------------------------------------------------------

def cmd_lg(args) -> int:
    from . import lg
    topo = _topology(args.file)
    command = " ".join(args.command)
    try:
        lg.check_command(command)
        router = lg.resolve_router(topo, args.target, args.router)
    except lg.Refused as exc:
        raise WatchUsage(f"minet lg: refused: {exc}")
    rc, out = lg.run_lg(_lab(args.file), router, command)
    sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    return 0 if rc == 0 else 1
