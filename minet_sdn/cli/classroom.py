"""Parsers of `minet class doors|passwd` and `minet configs save|restore|snapshot` (what they do:
classroom/cli.py)."""
from __future__ import annotations

from ..classroom import cli as C
from ..classroom.cli import guarded


def add_class_commands(subparsers) -> None:
    """Register `class doors|passwd` and `configs save|restore` on the `minet` CLI."""
    cls = subparsers.add_parser("class", help="students' doors: list them, rotate a password")
    csub = cls.add_subparsers(dest="class_cmd", required=True)
    d = csub.add_parser("doors", help="each group's door: address, port, user, password, host key")
    d.add_argument("file")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=guarded(C.cmd_doors))
    p = csub.add_parser("passwd", help="give a group a new password (a running door takes it at once)")
    p.add_argument("file")
    p.add_argument("asn")
    p.set_defaults(func=guarded(C.cmd_passwd))
    add_configs_commands(subparsers)


def add_configs_commands(subparsers) -> None:
    cfg = subparsers.add_parser("configs", help="save or restore every router's and switch's configuration (a lab)")
    sub = cfg.add_subparsers(dest="configs_cmd", required=True)
    s = sub.add_parser("save", help="every router's running configuration into DIR/as<ASN>/<ROUTER>.conf, every "
                       "switch's VLAN settings into DIR/as<ASN>/<SWITCH>.ovs")
    s.add_argument("file")
    s.add_argument("dir")
    s.set_defaults(func=guarded(C.cmd_configs_save))
    r = sub.add_parser("restore", help="put saved configurations back (frr.conf and the running daemons)")
    r.add_argument("file")
    r.add_argument("dir")
    r.add_argument("--group", metavar="ASN", help="only this AS's routers")
    r.set_defaults(func=guarded(C.cmd_configs_restore))
    n = sub.add_parser("snapshot", help="save every configuration into git repository REPO and commit what "
                                        "changed, per group (made when missing)")
    n.add_argument("file")
    n.add_argument("repo")
    n.add_argument("--every", type=float, metavar="SECONDS",
                   help="keep going: a snapshot every SECONDS (e.g. 3600: hourly), until stopped")
    n.set_defaults(func=guarded(C.cmd_configs_snapshot))
