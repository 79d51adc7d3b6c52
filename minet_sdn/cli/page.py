"""`python -m minet_sdn.cli.page --topology FILE --port PORT [--access groups|public]`: the students'
page's server process (what it serves: classroom/page_main.py; `lab up` starts it)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..classroom.page_main import serve


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="minet-students-page")
    p.add_argument("--topology", required=True)
    p.add_argument("--listen", default="127.0.0.1", choices=["127.0.0.1", "::1"],
                   help="loopback only: the page is never served inside the mini-Internet")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--access", choices=["groups", "public"], default="groups")
    p.add_argument("--ready-file")
    args = p.parse_args(argv)
    try:
        serve(args.topology, args.listen, args.port, args.access, args.ready_file)
    except OSError as exc:
        print(f"minet students' page: cannot listen on {args.listen}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
