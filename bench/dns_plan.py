#!/usr/bin/env python3
"""What DNS adds to planning a server, the old way against the new one (no root, no lab).

    python3 bench/dns_plan.py [--ases 60] [--servers 2 4 8]

For a class topology of N ASes (3 of them with a DNS server) on S servers, every server's plan is
built once without services (the reference, measured in the same run) and once with them, the way
`minet-provision` does on each server:

  old   services.build with plan_of: each server builds every server's plan for the address book
        (S plans per server, S^2 for the whole lab)
  new   services.build from the topology's addressing (topology_address_book): one pass

Printed: CPU seconds for all S servers and the ratio to the reference. The two must give the same
services plan (checked here as well as in tests/unit/test_services.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minet_sdn.provision import services as PS  # noqa: E402
from minet_sdn.provision.plan import build_plan  # noqa: E402
from minet_sdn.topology import parse_topology  # noqa: E402
from minet_sdn.topology.generate import class_topology  # noqa: E402


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ases", type=int, default=60)
    ap.add_argument("--servers", type=int, nargs="+", default=[2, 4, 8])
    args = ap.parse_args(argv)
    print(f"# bench/dns_plan.py --ases {args.ases} --servers {' '.join(map(str, args.servers))}")
    print("| servers | plans without services (reference) | services, old (S plans per server) "
          "| services, new (from the topology) | old / reference | new / reference |")
    print("|---|---|---|---|---|---|")
    for n_servers in args.servers:
        data = yaml.safe_load(class_topology(args.ases, servers=n_servers, name=f"dns{n_servers}"))
        for asn in (1, 2, 3):
            data["ases"][asn]["services"] = {"ZURI": ["dns"]}
        topo = parse_topology(yaml.safe_dump(data), "dns.yaml")
        plans = {}

        def reference():
            for s in topo.servers:
                plans[s] = build_plan(topo, s, root="/nonexistent-root", with_services=False)

        ref = cpu(reference)
        results = {}

        def old():
            for s in topo.servers:      # each server rebuilds every server's plan
                results[("old", s)] = PS.build(topo, s, plans[s], lambda o: build_plan(
                    topo, o, root="/nonexistent-root", with_services=False))

        def new():
            for s in topo.servers:
                results[("new", s)] = PS.build(topo, s, plans[s])

        t_old, t_new = cpu(old), cpu(new)
        assert all(results[("old", s)] == results[("new", s)] for s in topo.servers)
        print(f"| {n_servers} | {ref:.2f} s | {t_old:.2f} s | {t_new:.2f} s | {t_old / ref:.1f} | {t_new / ref:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
