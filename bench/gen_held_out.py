#!/usr/bin/env python3
"""A class-shaped topology written as a TA would write it: only documented keys, every default kept.

    python3 bench/gen_held_out.py [--ases 60] [--servers 4] [--seed 7] > /tmp/held.yaml

Not `minet generate class`: another shape (ASes in blocks per server instead of round-robin, a
random but seeded choice of providers and peers, links on random routers) and a `fabric:` of
`isolation: key` only, so nothing the class generator tunes (BFD interval, underlay MTU) is in it.
"""
import argparse
import random

ROUTERS = ["ZURI", "BASE", "GENE", "LUGA", "MUNI", "LYON", "VIEN", "MILA"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ases", type=int, default=60)
    p.add_argument("--servers", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--name", default="held")
    a = p.parse_args()
    rnd = random.Random(a.seed)
    n = a.ases
    tier1 = list(range(1, max(2, n // 10) + 1))
    transit = list(range(tier1[-1] + 1, tier1[-1] + 1 + int(n * 0.3)))
    stubs = list(range(transit[-1] + 1, n + 1))
    per = -(-n // a.servers)
    server = {asn: f"VM{(asn - 1) // per + 1}" for asn in range(1, n + 1)}
    used = {asn: 0 for asn in range(1, n + 1)}

    def r(asn: int) -> str:                 # spread each AS's links over its routers, from a random one
        used[asn] += 1
        return f"{asn}.{ROUTERS[(used[asn] + asn * 3) % len(ROUTERS)]}"

    links = []
    for i, x in enumerate(tier1):
        for y in tier1[i + 1:]:
            links.append((r(x), r(y), "peer"))
    for t in transit:
        for prov in rnd.sample(tier1, 2):
            links.append((r(prov), r(t), "provider"))
    for i in range(0, len(transit) - 1, 2):
        links.append((r(transit[i]), r(transit[i + 1]), "peer"))
    for s in stubs:
        for prov in rnd.sample(transit, 2):
            links.append((r(prov), r(s), "provider"))
    for i in range(0, len(stubs) - 1, 3):
        links.append((r(stubs[i]), r(stubs[i + 1]), "peer"))
    students = set(stubs[-2:])
    print(f"name: {a.name}\nfabric: {{isolation: key}}\nservers:")
    for k in range(1, a.servers + 1):
        print(f"  VM{k}: {{underlay_ip: 198.51.100.{k}}}")
    print("ases:")
    for asn in range(1, n + 1):
        extra = ", configure: false" if asn in students else ""
        print(f"  {asn}: {{server: {server[asn]}, routers: [{', '.join(ROUTERS)}]{extra}}}")
    print("links:")
    for x, y, rel in links:
        print(f"  - {{a: {x}, b: {y}, rel: {rel}}}")


if __name__ == "__main__":
    main()
