"""`python -m minet_sdn.cli.relay --netns NS --target HOST:PORT --port-file FILE`: the lab's loopback
relay to its controller's REST API (what it does: lab/relay.py; `lab up` starts it)."""
from __future__ import annotations

import argparse
from typing import List, Optional

from ..lab.relay import serve


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="minet-lab-relay")
    p.add_argument("--netns", required=True)
    p.add_argument("--target", required=True, help="HOST:PORT inside the namespace")
    p.add_argument("--port-file", required=True)
    args = p.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    serve(args.netns, host.strip("[]"), int(port), args.port_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
