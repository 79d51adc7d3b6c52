"""`minet`: the command line.

  minet validate FILE                 check a topology (exit 2 and one line per problem)
  minet controller --topology FILE    run the remote-link controller (os-ken)
  minet link list FILE [--json]       links, their state and counters (from the controller)
  minet link fail FILE ID             take a remote link down: both routers lose carrier
  minet link restore FILE ID          bring it back
  minet lab up|down|status FILE       the embedded multi-server lab
  minet exec FILE NODE -- CMD         run a command in a lab node
  minet matrix|graph|lg FILE ...      watch a lab: connectivity matrix, picture, looking glass
  minet import mini-internet DIR | gml FILE [-o OUT]   make a topology; minet partition FILE --servers N
  minet class doors|passwd FILE ...   students' SSH doors (docs/class.md)

Errors are one line on stderr; bad input exits 2, an unreachable controller exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from typing import List, Optional, Tuple

from ..errors import UserError
from ..topology import Topology, TopologyError, load_topology, validate
from .output import guarded


class UsageError(UserError):
    """A wrong command-line argument: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:          # argparse would print usage + exit 2; keep it one line
        raise UsageError(f"{self.prog}: {message}")


def _topology(path: str) -> Topology:
    try:
        return load_topology(path)
    except TopologyError as exc:
        raise UsageError("\n".join(exc.problems))


def _hostport(value: str, what: str, default_port: int) -> Tuple[str, int]:
    """A listener given on the command line: the topology file's rules (no wildcard, no name)."""
    from ..topology.loader import listen_address
    hostport, problem = listen_address(value, default_port)
    if hostport is None:
        raise UsageError(f"minet controller: {what}: {problem}")
    return hostport


def _seconds(value: str) -> float:
    if not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6})?", value):
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not a number of seconds")
    return float(value)


def _shown(value: str, limit: int = 40) -> str:
    text = value if len(value) <= limit else value[:limit - 1] + "…"
    return repr(text)


# ---- validate ------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    try:
        topo = validate.load_valid(args.file)
    except TopologyError as exc:
        raise UsageError("\n".join(exc.problems))
    remote = len(topo.remote_links)
    ixps = (f", {len(topo.ixps)} IXPs ({len(topo.ixp_segments)} members on other servers, over IXP segments)"
            if topo.ixps else "")
    print(f"{args.file}: ok: {len(topo.servers)} servers, {len(topo.ases)} ASes, {len(topo.routers)} routers, "
          f"{len(topo.links)} links ({remote} remote, {len(topo.bridges)} remote bridges){ixps}, "
          f"isolation {topo.fabric.isolation}")
    for line in validate.scale_warnings(topo, validate.written_keys(args.file, "fabric"), os.cpu_count() or 1):
        print(f"warning: {line}", file=sys.stderr)
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
    c = topo.controller
    ofp = _hostport(args.ofp, "--ofp", 6653) if args.ofp else (c.ofp_host, c.ofp_port)
    rest = _hostport(args.rest, "--rest", 8080) if args.rest else (c.rest_host, c.rest_port)
    if ofp == rest:
        host = f"[{ofp[0]}]" if ":" in ofp[0] else ofp[0]
        raise UsageError(f"minet controller: OpenFlow and REST cannot both listen on {host}:{ofp[1]}")
    if args.echo_interval is not None and not 0.05 <= args.echo_interval <= 3600:
        raise UsageError(f"minet controller: --echo-interval {args.echo_interval:g} is not in 0.05..3600 seconds")
    for name in args.rest_name:
        if not re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?",
                            name, re.IGNORECASE):
            raise UsageError(f"minet controller: --rest-name {name!r} is not a DNS name")
    _check_bindable(*ofp, "OpenFlow")
    _check_bindable(*rest, "REST")
    if args.log_file:
        try:
            open(args.log_file, "a").close()
        except OSError as exc:
            raise UsageError(f"minet controller: --log-file {args.log_file}: {exc.strerror or exc}")

    import logging
    import signal
    import threading
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), filename=args.log_file,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..compat import FRAMEWORK
    import importlib
    app_manager = importlib.import_module(f"{FRAMEWORK}.base.app_manager")
    importlib.import_module(f"{FRAMEWORK}.controller.controller")   # registers the ofp listen options
    cfg = importlib.import_module(f"{FRAMEWORK}.cfg")
    cfg.CONF(args=["--ofp-listen-host", ofp[0], "--ofp-tcp-listen-port", str(ofp[1])], project=FRAMEWORK)
    from ..apps import remote_links
    remote_links.install()          # the listener's hardening (apps/guard.py), before anything listens
    stopped = threading.Event()
    outcome = {"code": 0, "why": ""}

    def fatal(reason: str) -> None:          # the app cannot go on (its OpenFlow listener died)
        outcome.update(code=3, why=reason)
        stopped.set()

    remote_links.CONFIG.update(topology=args.topology, rest=rest, state=args.state, rest_names=args.rest_name,
                               echo_interval=args.echo_interval, on_fatal=fatal)
    # the status page is ours to add, not the controller's: its BGP panel asks the routers where
    # provisioning put them (this machine's state root, or the lab's, and the backend)
    from ..provision.plan import state_root
    from ..rest import page as rest_page
    from ..watch.page import StatusPage, root_of
    rest_page.install(StatusPage(root_of(args.provision_root or state_root()), args.backend))
    print(f"minet controller: topology {topo.name}, OpenFlow on {ofp[0]}:{ofp[1]}, REST on "
          f"http://{rest[0]}:{rest[1]}", file=sys.stderr, flush=True)

    def reload_on_hup(signum, frame):          # `kill -HUP`: re-read the topology, like a daemon
        for app in app_manager.AppManager.get_instance().applications.values():
            if isinstance(app, remote_links.RemoteLinks):
                try:
                    app.reload()
                except Exception as exc:
                    logging.getLogger("minet").error("reload failed: %s", getattr(exc, "message", exc))
    signal.signal(signal.SIGHUP, reload_on_hup)
    # os-ken's AppManager.run_apps() cannot stop its native threads (Ctrl-C gave two tracebacks):
    # start the apps ourselves, wait here, and leave with os._exit once the state is on disk.
    try:
        manager = app_manager.AppManager.get_instance()
        manager.load_apps(["minet_sdn.apps.remote_links"])
        services = manager.instantiate_apps(**manager.create_contexts())
        while not stopped.wait(0.5):
            if not any(t.is_alive() for t in services):
                outcome.update(code=3, why="every controller thread ended")
                break
    except KeyboardInterrupt:
        outcome.update(code=0, why="interrupted")
    except Exception as exc:
        logging.getLogger("minet").exception("controller failed")
        outcome.update(code=1, why=f"{type(exc).__name__}: {exc}")
    print(f"minet controller: stopped: {outcome['why']}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(outcome["code"])


# ---- link ----------------------------------------------------------------------------------

def _rest_base(args, topo) -> str:
    """Where this instance's controller answers: the running lab's relay, else controller.rest."""
    base = topo.controller.rest_url
    from ..lab import LabError                           # a running lab puts its controller elsewhere
    from ..lab.controller import rest_base as lab_rest_base
    from ..lab.state import LabState
    try:
        # only the lab this file built (lab/guard.py: another file of the same name, or link N
        # of an edited file that is another link in the running version, is refused)
        from ..lab.guard import for_command
        note = for_command(args.file, topo, _link_id(args.id) if getattr(args, "id", None) else None)
        if note:
            print(f"minet: note: {note}", file=sys.stderr)
        lab_base = lab_rest_base(topo)
        # a lab of this instance exists but its relay is gone: controller.rest is tried (from inside
        # the lab's mgmt namespace it answers), never silently, and only what names this instance
        # is believed (the callers check X-Minet-Instance before any write: issue 21)
        if lab_base is None and LabState.load(topo) is not None:
            print(f"minet: {args.file}: the lab's REST relay is not running (`minet lab up {args.file}` "
                  f"restarts it); trying controller.rest {base}", file=sys.stderr)
    except LabError as exc:
        raise UsageError(f"minet: {_one_line(exc)}")
    return lab_base or base


def _rest(args, method: str, path: str):
    topo = _topology(args.file)
    from ..lab.controller import token_for, token_path
    from ..rest.client import ControllerUnreachable, NotOurApi, OtherInstance, call, describe, identify
    base = _rest_base(args, topo)
    try:
        if method != "GET":      # make sure it is THIS instance's controller before it acts
            identify(base, topo.name)
        status, body = call(base, method, path, token=token_for(topo) if method != "GET" else None,
                            instance=topo.name)
    except ControllerUnreachable as exc:
        print(f"minet: {exc} (is the controller running? `minet controller --topology {args.file}`, "
              f"or for a lab `minet lab up {args.file}` restarts it)", file=sys.stderr)
        raise SystemExit(1)
    except OtherInstance as exc:
        raise UsageError(f"minet: {args.file}: {_one_line(exc)}")
    except NotOurApi as exc:
        _not_our_api(str(exc))
    url = base.rstrip("/") + path
    if status in (401, 403) and method != "GET":
        raise UsageError(f"minet: {args.file}: the controller refused ({status}): this needs its token, "
                         f"readable by root in {token_path(topo)}")
    if status in (404, 409) and isinstance(body, dict) and isinstance(body.get("error"), str):
        raise UsageError(f"minet: {args.file}: {_one_line(body['error'])}")
    if status != 200:
        print(f"minet: {url}: the controller answered {status}: {describe(body)}", file=sys.stderr)
        raise SystemExit(1)
    return url, body


def _one_line(text) -> str:
    return " ".join(str(text).split())[:300]


def _not_our_api(what: str):
    print(f"minet: {what} (is something else listening on the controller's REST port?)", file=sys.stderr)
    raise SystemExit(1)


def _check_link_view(view) -> bool:
    return (isinstance(view, dict) and isinstance(view.get("id"), int) and isinstance(view.get("rel"), str)
            and isinstance(view.get("state"), str) and isinstance(view.get("remote"), bool)
            and all(isinstance(view.get(side), dict) and isinstance(view[side].get("router"), str)
                    and isinstance(view[side].get("server"), str) for side in ("a", "b"))
            and isinstance(view.get("counters", {}), dict)
            and all(c is None or (isinstance(c, dict) and isinstance(c.get("packets"), int))
                    for c in view.get("counters", {}).values()))


def _link_id(value: str) -> int:
    # ASCII digits only: str.isdigit() takes '²' (int() then fails) and '١' or '１' (taken as 1)
    if not re.fullmatch(r"[0-9]{1,9}", value) or int(value) < 1:
        raise UsageError(f"minet link: {_shown(value)} is not a link id (1, 2, ...)")
    return int(value)


def cmd_link_list(args) -> int:
    from ..rest.client import describe
    url, body = _rest(args, "GET", "/v1/links")
    links = body.get("links") if isinstance(body, dict) else None
    if not isinstance(links, list) or not all(_check_link_view(l) for l in links):
        _not_our_api(f"{url} answered {describe(body)}, not the controller's list of links")
    if args.json:
        print(json.dumps(links, indent=1))
        return 0
    print(f"{'ID':>4}  {'A':<14} {'B':<14} {'REL':<9} {'WHERE':<12} {'STATE':<7} {'TUNNEL':<6} {'PACKETS':>10}"
          "  SHAPING")
    for l in links:
        where = f"{l['a']['server']}-{l['b']['server']}" if l["remote"] else f"local {l['a']['server']}"
        tunnel = "-" if l.get("tunnel_live") is None else ("live" if l["tunnel_live"] else "DOWN")
        answered = [c for c in l.get("counters", {}).values() if c is not None]
        packets = sum(c["packets"] for c in answered) if answered else ("?" if l["remote"] else "-")
        shaped = l.get("shaping") or {}
        shaping = " ".join(f"{k} {v}" for k, v in shaped.items()) or "-"
        print(f"{l['id']:>4}  {l['a']['router']:<14} {l['b']['router']:<14} {l['rel']:<9} {where:<12} "
              f"{l['state']:<7} {tunnel:<6} {packets:>10}  {shaping}")
    return 0


def cmd_ui(args) -> int:
    """The status page's login URL: the page's address with the token in its fragment (never sent to
    a server; the page keeps it for its tab). Only who can read the token file gets it."""
    topo = _topology(args.file)
    from ..lab.controller import token_for, token_path
    base = _rest_base(args, topo)
    token = token_for(topo)
    if token is None:
        raise UsageError(f"minet ui: cannot read the controller's token {token_path(topo)} "
                         "(root only; is the controller running?)")
    print(f"{base.rstrip('/')}/ui#token={token}")
    return 0


def cmd_link_admin(args) -> int:
    from ..rest.client import describe
    verb = "fail" if args.link_cmd == "fail" else "restore"
    link_id = _link_id(args.id)
    url, view = _rest(args, "POST", f"/v1/links/{link_id}/{verb}")
    if not _check_link_view(view):
        _not_our_api(f"{url} answered {describe(view)}, not the controller's view of a link")
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
    c.add_argument("--rest-name", action="append", default=[], metavar="NAME",
                   help="a DNS name clients use for the REST API (repeatable); without it only addresses "
                        "and localhost are accepted in Host (DNS rebinding)")
    c.add_argument("--state", metavar="FILE",
                   help="where operator link failures are kept across restarts "
                        "(default $MINET_STATE_DIR or /var/lib/minet-sdn, then NAME/controller-state.json)")
    c.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    c.add_argument("--log-file")
    c.add_argument("--echo-interval", type=_seconds, metavar="SECONDS",
                   help="silence after which a switch is sent an echo request; after 3 it is dropped (default 5)")
    c.add_argument("--provision-root", metavar="DIR",
                   help="the status page's BGP panel: where minet-provision keeps the routers' state on "
                        "this machine ({server} stands for each server's name; default $MINET_STATE_DIR "
                        "or /var/lib/minet-sdn)")
    c.add_argument("--backend", choices=("netns", "docker"), default="netns",
                   help="the status page's BGP panel: how provisioning made the routers (default netns)")
    c.set_defaults(func=cmd_controller)

    u = sub.add_parser("ui", help="print the status page's login URL (with the controller's token; root)")
    u.add_argument("file")
    u.set_defaults(func=cmd_ui)

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

    from .watch import add_watch_commands                 # matrix, measure, graph, lg
    add_watch_commands(sub)
    from .importers import add_commands as add_import_commands
    add_import_commands(sub)      # import mini-internet|gml|as-rel, partition

    from .generate import add_generate_commands
    add_generate_commands(sub)
    from .classroom import add_class_commands        # class doors|passwd, configs save|restore|snapshot
    add_class_commands(sub)
    from .lab import add_lab_commands
    add_lab_commands(sub)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    return guarded(lambda: _main(argv), "minet")


def _main(argv: Optional[List[str]]) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except UserError as exc:      # what the user did wrong, wherever it was found: one line each, exit 2
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
