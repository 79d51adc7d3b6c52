"""minet-provision: build (or remove) the part of a topology that lives on one server, or on all.

    minet-provision [--topology FILE] --server VM1 [--down] [--wait [S]] [--json] [--backend docker [--image IMG]]
    minet-provision [--topology FILE] --master [--down] [--wait [S]] [--json] [--known-hosts F] [--identity F]
                    [--insecure-host-keys] [--local-server X] [--remote-command CMD]
    minet-provision [--topology FILE] --server VM1 --plan      (print the plan, change nothing)

Single-server mode works in the current network namespace and talks to the Open vSwitch found
through the usual environment (OVS_RUNDIR); its state lives under $MINET_STATE_DIR (default
/var/lib/minet-sdn)/<topology name>/<server>/. Progress goes to stderr.

With --wait, `up` returns when routing has converged on the server's configured routers: every
BGP session they should have is Established and each has a route to every configured AS (each
server asks only its own routers, on this machine; with --master every server waits at once, so
the whole topology has converged when all return). Not converged within S seconds (default 180 +
0.5 per router of the topology): exit 1, with one line saying which routers and why; what was
built stays (it is not a failure to build).

Exit status: 0 done, 1 provisioning failed (what this run created was rolled back) or, with --wait,
not converged in time, 2 bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sys
import threading
import time
from typing import List, Optional

from ..cli.output import OneLineParser, guarded
from ..errors import UserError
from ..messages import clip_line
from ..provision.apply import ProvisionError, Provisioner
from ..provision.ovs import detect_datapath
from ..provision.image import IMAGE_ENV, default_image
from ..provision.plan import BACKENDS, build_plan, state_root
from ..provision.layer2 import refuse_backend as refuse_layer2
from ..topology.places import ROUTER, build_places
from ..provision import converge, doors_remote, ssh
from ..topology import TopologyError, validate


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="minet-provision", description=__doc__.split("\n\n")[0])
    p.add_argument("--topology", default="topology.yaml", help="topology file (default ./topology.yaml)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--server", help="provision this server (this machine)")
    who.add_argument("--master", action="store_true", help="provision every server of the topology over SSH")
    p.add_argument("--down", action="store_true", help="remove what provisioning made instead")
    p.add_argument("--json", action="store_true", help="print a machine-readable report on stdout")
    p.add_argument("--plan", action="store_true", help="print the plan of --server as JSON and change nothing")
    p.add_argument("--wait", nargs="?", type=_seconds, const=-1.0, default=None, metavar="S",
                   help="after up, wait until BGP has converged on the server's routers (at most S "
                        "seconds; default 180 + 0.5 per router)")
    p.add_argument("--backend", choices=BACKENDS, default="netns",
                   help="how nodes are made: netns (named namespaces, default) or docker (containers)")
    p.add_argument("--image", help=f"docker backend: the image (default ${IMAGE_ENV}, else {default_image()}, "
                                   "built locally when missing)")
    p.add_argument("--datapath", choices=("auto", "netdev", "system"), default="auto",
                   help="OvS datapath of the remote bridges (default: detect the kernel module)")
    p.add_argument("-v", "--verbose", action="store_true", help="list every change")
    m = p.add_argument_group("master mode")
    m.add_argument("--known-hosts", help="known_hosts file to check server host keys against")
    m.add_argument("--identity", help="SSH private key file")
    m.add_argument("--insecure-host-keys", action="store_true", help="accept unknown or changed host keys")
    m.add_argument("--local-server", help="a server without `ssh` that is this machine (run locally)")
    m.add_argument("--remote-command", default=ssh.DEFAULT_REMOTE_COMMAND,
                   help="the minet-provision command on the servers (default: minet-provision)")
    p.add_argument("--doors", metavar="BUNDLE",
                   help="with --server: make (or remove) this server's students' doors from the master's "
                        "BUNDLE (what --master sends; docs/class.md), nothing else")
    return p


def _seconds(text: str) -> float:
    value = float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 < S <= 86400)")
    return value


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _bad(lines: List[str]) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    return 2


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt   # SIGTERM as Ctrl-C: `up` rolls back what it created, then reports


def main(argv: Optional[List[str]] = None) -> int:
    return guarded(lambda: _told(argv), "minet-provision")


def _told(argv: Optional[List[str]]) -> int:
    try:
        return _main(argv)
    except UserError as exc:      # what the user did wrong, wherever it was found: one line each, exit 2
        print(str(exc), file=sys.stderr)
        return exc.exit_code


def _main(argv: Optional[List[str]]) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        topo = validate.load_valid(args.topology)
    except TopologyError as exc:
        return _bad(exc.problems)
    if args.doors and not args.server:
        return _bad(["minet-provision: --doors goes with --server (the master sends it)"])
    if args.master:
        return _master(args, topo)
    if not args.server:
        return _bad(["minet-provision: give --server NAME (this machine) or --master"])
    if args.wait is not None and (args.down or args.plan):
        return _bad([f"minet-provision: --wait goes with up, not with {'--down' if args.down else '--plan'}"])
    if args.server not in topo.servers:
        return _bad([f"{topo.source}: --server {args.server}: not a server of this topology "
                     f"({', '.join(topo.servers)})"])
    if args.doors:
        return _server_doors(args, topo)
    datapath = detect_datapath() if args.datapath == "auto" else args.datapath
    refused = refuse_layer2(topo, args.server, args.backend)
    if refused:
        return _bad([f"{topo.source}: {refused}"])
    plan = build_plan(topo, args.server, datapath=datapath, backend=args.backend)
    if args.plan:
        doc = dataclasses.asdict(plan)
        doc.pop("addressing", None)
        print(json.dumps(doc, indent=1))
        return 0
    try:
        prov = Provisioner(plan, progress=_progress, image=args.image)
    except ValueError as exc:
        return _bad([f"minet-provision: {exc}"])
    action = "down" if args.down else "up"
    try:
        report = prov.down() if args.down else prov.up()
    except KeyboardInterrupt:
        print(f"error: {args.server}: interrupted", file=sys.stderr)
        return 130
    except ProvisionError as exc:
        rolled = getattr(exc, "rolled_back", [])
        print(f"error: {clip_line(str(exc))}", file=sys.stderr)
        if rolled:
            print(f"[{exc.server}] rolled back {len(rolled)} things this run created", file=sys.stderr)
        if args.json:
            print(json.dumps({"server": exc.server, "instance": topo.name, "action": action, "ok": False,
                              "error": exc.what, "rolled_back": rolled, "changes": prov.changes,
                              "n_changes": len(prov.changes)}))
        return 1
    doc = report.as_dict()
    converged = True
    if args.wait is not None:
        converged, doc["routing"] = _wait_routing(topo, plan, args.wait)
        doc["ok"] = converged
        if not converged:
            doc["error"] = doc["routing"]["error"]
    if args.json:
        print(json.dumps(doc))
    else:
        if args.verbose:
            for change in report.changes:
                print(f"  {change}")
        print(f"{report.server}: {action}: {len(report.changes)} changes in {report.seconds:.1f}s")
        if "routing" in doc:
            print(f"{report.server}: routing: {doc['routing']['summary']}")
    if not converged:
        print(f"error: {args.server}: {doc['error']}", file=sys.stderr)
    return 0 if converged else 1


def _wait_routing(topo, plan, wait: float):
    """Wait for BGP on this server's configured routers: (converged, report for --json)."""
    t0 = time.monotonic()
    places = build_places(topo, state_root(), plan.backend, servers=[plan.server])
    routers = [p.id for p in places.on(plan.server)                            # (not route servers)
               if p.kind == ROUTER and topo.ases[p.asn].configure]
    timeout = converge.default_timeout(len(topo.routers)) if wait < 0 else wait
    _progress(f"[{plan.server}] waiting for BGP on {len(routers)} configured routers")
    ok, reports = converge.wait_converged(
        topo, routers, lambda r, cmd, t: converge.ask(places[r], cmd, t), timeout=timeout, routes=True,
        progress=lambda m: _progress(f"[{plan.server}] {m}"))
    up, total = converge.count_sessions(reports)
    done = sum(1 for r in reports if converge.bgp_converged(r) and r.get("routes_missing") == [])
    seconds = round(time.monotonic() - t0, 1)
    doc = {"converged": ok, "seconds": seconds, "sessions": {"established": up, "expected": total},
           "routers": {"converged": done, "total": len(routers)},
           "summary": f"{up}/{total} sessions established, {done}/{len(routers)} routers with every route "
                      f"({seconds:.1f} s)"}
    if not ok:
        doc["error"] = f"not converged after {timeout:.0f} s: {converge.not_converged(reports)}"
    return ok, doc


def _master(args: argparse.Namespace, topo) -> int:
    problems = ssh.master_targets(topo, args.local_server)
    if problems:
        return _bad(problems)
    opts = ssh.SshOptions(known_hosts=args.known_hosts, identity=args.identity,
                          insecure_host_keys=args.insecure_host_keys, remote_command=args.remote_command)
    if args.insecure_host_keys:
        _progress("warning: --insecure-host-keys: server host keys are not checked")
    if args.known_hosts and not os.path.exists(args.known_hosts):
        return _bad([f"--known-hosts {args.known_hosts}: no such file"])
    extra = [] if args.backend == "netns" else ["--backend", args.backend]
    if args.image:
        extra += ["--image", args.image]
    if args.wait is not None:
        if args.down:
            return _bad(["minet-provision: --wait goes with up, not with --down"])
        extra += ["--wait"] + ([f"{args.wait:g}"] if args.wait > 0 else [])
    topo_path = os.path.abspath(args.topology)
    door_results = []
    if args.down and args.backend == "netns":       # the doors first: their sessions are in the nodes
        door_results = doors_remote.push(topo, topo_path, True, opts, _progress, args.local_server)
    try:
        results = ssh.run_master(topo, topo_path, args.down, opts, _progress,
                                 local_server=args.local_server, extra=extra)
    except ssh.Interrupted as exc:   # forwarded to every server, whose rollbacks are over (provision/ssh.py)
        for r in exc.results:
            print(r.line(), file=sys.stderr)
        print("error: interrupted: every server's provisioner was told to stop and has exited", file=sys.stderr)
        return 130
    ok = all(r.ok for r in results)
    if ok and not args.down and args.backend == "netns":
        door_results = doors_remote.push(topo, topo_path, False, opts, _progress, args.local_server)
    ok = ok and all(d["ok"] for d in door_results)
    if args.json:
        doc = {"instance": topo.name, "action": "down" if args.down else "up", "ok": ok,
               "servers": [r.as_dict() for r in results]}
        if door_results:
            doc["doors"] = door_results
        print(json.dumps(doc))
    else:
        for r in results:
            print(r.line())
        for d in door_results:
            what = ", ".join(f"AS{g['group']}:{g['port']}" for g in (d.get("report") or {}).get("doors", []))
            print(f"{d['server']}: doors: " + (("ok" + (f" ({what})" if what else "")) if d["ok"] else d["error"]))
    return 0 if ok else 1


def _server_doors(args: argparse.Namespace, topo) -> int:
    """`--server S --doors BUNDLE`: this server's students' doors, from the master's bundle."""
    from ..classroom import ClassError
    try:
        doc = doors_remote.apply_bundle(topo, args.server, args.doors, _progress)
    except (doors_remote.BundleError, ClassError) as exc:
        doc = {"server": args.server, "ok": False, "error": clip_line(str(exc))}
        print(f"error: {args.server}: {doc['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(doc))
    elif doc["ok"]:
        print(f"{args.server}: {doc['action']}: " + ", ".join(f"AS{d['group']} port {d['port']}"
                                                                for d in doc.get("doors", [])))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
