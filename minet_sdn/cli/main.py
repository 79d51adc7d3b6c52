"""`minet`: the command line.

  minet validate FILE                 check a topology (exit 2 and one line per problem)
  minet controller --topology FILE    run the remote-link controller (os-ken)
  minet link list FILE [--json]       links, their state and counters (from the controller)
  minet link fail FILE ID             take a remote link down: both routers lose carrier
  minet link restore FILE ID          bring it back
  minet lab up|down|status FILE       the embedded multi-server lab (when installed)
  minet exec FILE NODE -- CMD         run a command in a lab node

Errors are one line on stderr; bad input exits 2, an unreachable controller exits 1.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import List, Optional, Tuple

from ..topology import Topology, TopologyError, load_topology


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:          # argparse would print usage + exit 2; keep it one line
        raise UsageError(f"{self.prog}: {message}")


def _topology(path: str) -> Topology:
    try:
        return load_topology(path)
    except TopologyError as exc:
        raise UsageError("\n".join(exc.problems))


def _hostport(value: str, what: str) -> Tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"minet controller: {what} {value!r} is not HOST:PORT")
    return host, int(port)


# ---- validate ------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    topo = _topology(args.file)
    remote = len(topo.remote_links)
    print(f"{args.file}: ok: {len(topo.servers)} servers, {len(topo.ases)} ASes, {len(topo.routers)} routers, "
          f"{len(topo.links)} links ({remote} remote, {len(topo.bridges)} remote bridges), "
          f"isolation {topo.fabric.isolation}")
    return 0


# ---- controller ----------------------------------------------------------------------------

def _check_bindable(host: str, port: int, what: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(f"minet controller: cannot listen for {what} on {host}:{port}: {exc.strerror}")


def cmd_controller(args) -> int:
    topo = _topology(args.topology)
    ofp = _hostport(args.ofp, "--ofp") if args.ofp else (topo.controller.ofp_host, topo.controller.ofp_port)
    rest = _hostport(args.rest, "--rest") if args.rest else (topo.controller.rest_host, topo.controller.rest_port)
    _check_bindable(*ofp, "OpenFlow")
    _check_bindable(*rest, "REST")

    import logging
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), filename=args.log_file,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..compat import FRAMEWORK
    import importlib
    app_manager = importlib.import_module(f"{FRAMEWORK}.base.app_manager")
    importlib.import_module(f"{FRAMEWORK}.controller.controller")   # registers the ofp listen options
    cfg = importlib.import_module(f"{FRAMEWORK}.cfg")
    cfg.CONF(args=["--ofp-listen-host", ofp[0], "--ofp-tcp-listen-port", str(ofp[1])], project=FRAMEWORK)
    from ..apps import remote_links
    remote_links.CONFIG.update(topology=args.topology, rest=rest, state=args.state)
    print(f"minet controller: topology {topo.name}, OpenFlow on {ofp[0]}:{ofp[1]}, REST on "
          f"http://{rest[0]}:{rest[1]}", file=sys.stderr, flush=True)
    import signal

    def reload_on_hup(signum, frame):          # `kill -HUP`: re-read the topology, like a daemon
        for app in app_manager.AppManager.get_instance().applications.values():
            if isinstance(app, remote_links.RemoteLinks):
                try:
                    app.reload()
                except Exception as exc:
                    logging.getLogger("minet").error("reload failed: %s", getattr(exc, "message", exc))
    signal.signal(signal.SIGHUP, reload_on_hup)
    try:
        app_manager.AppManager.run_apps(["minet_sdn.apps.remote_links"])
    except KeyboardInterrupt:
        pass
    return 0


# ---- link ----------------------------------------------------------------------------------

def _rest(args, method: str, path: str):
    topo = _topology(args.file)
    from ..rest.client import ControllerUnreachable, call
    base = topo.controller.rest_url
    try:
        from ..lab import access as lab_access           # a running lab puts its controller elsewhere
        base = lab_access.rest_base(args.file, topo) or base
    except ImportError:
        pass
    try:
        status, body = call(base, method, path)
    except ControllerUnreachable as exc:
        print(f"minet: {exc} (is the controller running? `minet controller --topology {args.file}`, "
              f"or for a lab `minet lab up {args.file}` restarts it)", file=sys.stderr)
        raise SystemExit(1)
    if status == 404 or status == 409:
        raise UsageError(f"minet: {args.file}: {body.get('error') if isinstance(body, dict) else body}")
    if status != 200:
        print(f"minet: controller answered {status}: {body}", file=sys.stderr)
        raise SystemExit(1)
    return body


def _link_id(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"minet link: {value!r} is not a link id (1, 2, ...)")
    return int(value)


def cmd_link_list(args) -> int:
    links = _rest(args, "GET", "/v1/links")["links"]
    if args.json:
        print(json.dumps(links, indent=1))
        return 0
    print(f"{'ID':>4}  {'A':<14} {'B':<14} {'REL':<9} {'WHERE':<12} {'STATE':<7} {'TUNNEL':<6} {'PACKETS':>10}")
    for l in links:
        where = f"{l['a']['server']}-{l['b']['server']}" if l["remote"] else f"local {l['a']['server']}"
        tunnel = "-" if l["tunnel_live"] is None else ("live" if l["tunnel_live"] else "DOWN")
        answered = [c for c in l.get("counters", {}).values() if c is not None]
        packets = sum(c["packets"] for c in answered) if answered else ("?" if l["remote"] else "-")
        print(f"{l['id']:>4}  {l['a']['router']:<14} {l['b']['router']:<14} {l['rel']:<9} {where:<12} "
              f"{l['state']:<7} {tunnel:<6} {packets:>10}")
    return 0


def cmd_link_admin(args) -> int:
    verb = "fail" if args.link_cmd == "fail" else "restore"
    view = _rest(args, "POST", f"/v1/links/{_link_id(args.id)}/{verb}")
    print(f"link {view['id']} ({view['a']['router']} - {view['b']['router']}): {view['state']}")
    return 0


# ---- parser --------------------------------------------------------------------------------

def build_parser() -> Parser:
    p = Parser(prog="minet", description="A mini-Internet across many servers, run as one.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)

    v = sub.add_parser("validate", help="check a topology file")
    v.add_argument("file")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("controller", help="run the remote-link controller")
    c.add_argument("--topology", required=True)
    c.add_argument("--ofp", help="OpenFlow listener HOST:PORT (default: the topology's controller.ofp)")
    c.add_argument("--rest", help="REST listener HOST:PORT (default: the topology's controller.rest)")
    c.add_argument("--state", metavar="FILE",
                   help="where operator link failures are kept across restarts "
                        "(default $MINET_STATE_DIR or /var/lib/minet-sdn, then NAME/controller-state.json)")
    c.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    c.add_argument("--log-file")
    c.set_defaults(func=cmd_controller)

    link = sub.add_parser("link", help="inspect, fail and restore inter-AS links")
    lsub = link.add_subparsers(dest="link_cmd", required=True, parser_class=Parser)
    ll = lsub.add_parser("list", help="every link with state and counters")
    ll.add_argument("file")
    ll.add_argument("--json", action="store_true")
    ll.set_defaults(func=cmd_link_list)
    for verb in ("fail", "restore"):
        la = lsub.add_parser(verb, help=f"{verb} a remote link")
        la.add_argument("file")
        la.add_argument("id")
        la.set_defaults(func=cmd_link_admin)

    from ..topology.generate import add_generate_commands
    add_generate_commands(sub)
    try:
        from ..lab.cli import add_lab_commands
    except ImportError:
        pass
    else:
        add_lab_commands(sub)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
