"""Parser and output of `minet generate class ...` (the layout itself: topology/generate.py, pure)."""
from __future__ import annotations

import argparse
import sys

from ..topology import generate as G


def cmd_generate_class(args) -> int:
    try:
        text = G.class_topology(args.ases, args.servers, args.name, args.routers, args.unconfigured, args.layer2)
    except G.GenerateError as exc:
        print(f"minet generate class: {exc}", file=sys.stderr)
        return 2
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def add_generate_commands(sub) -> None:
    g = sub.add_parser("generate", help="write a generated topology")
    gsub = g.add_subparsers(dest="gen_cmd", required=True, parser_class=type(g))
    c = gsub.add_parser("class", help="the teaching mini-Internet: N ASes x 8 routers, tier-1/transit/stub")
    c.add_argument("--ases", type=int, default=60)
    c.add_argument("--servers", type=int, default=4)
    c.add_argument("--routers", type=int, default=8, help="routers per AS (the first K of the classic 8)")
    c.add_argument("--unconfigured", type=int, default=2, help="stub ASes left to students (configure: false)")
    c.add_argument("--layer2", action="store_true",
                   help="every AS gets the current layout's layer 2 (4 switches, hosts in VLANs, L2 tunnel)")
    c.add_argument("--name", default="class")
    c.add_argument("--out", help="file to write (default: stdout)")
    c.set_defaults(func=cmd_generate_class)


def main(argv=None) -> int:
    """`python -m minet_sdn.cli.generate class ...`: `minet generate` alone."""
    p = argparse.ArgumentParser(prog="minet-generate")
    add_generate_commands(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
