"""Write a synthetic AS-relationship file (CAIDA's serial-2 form) shaped like the Internet.

No real AS-relationship data can be downloaded on the project's machines, so the 1,000-AS runs use
this: a tier-1 clique, transit ASes in two tiers buying from the tier above (1-3 providers, the
better-connected more likely) and peering among themselves, and stub ASes with 1-2 providers. The
same seed gives the same file.

    python3 bench/gen_as_rel.py --ases 5000 --seed 1 -o /tmp/as-rel.txt
"""
from __future__ import annotations

import argparse
import random
import sys


def generate(total: int, seed: int = 1, tier1: int = 12) -> str:
    rng = random.Random(seed)
    tier1 = min(tier1, max(2, total // 10))
    n_tier2 = max(1, total // 12)
    n_tier3 = max(1, total // 5)
    asn = iter(range(1000, 1000 + 10 * total))
    t1 = [next(asn) for _ in range(tier1)]
    t2 = [next(asn) for _ in range(n_tier2)]
    t3 = [next(asn) for _ in range(n_tier3)]
    stubs = [next(asn) for _ in range(max(0, total - tier1 - n_tier2 - n_tier3))]
    lines = ["# synthetic AS relationships (bench/gen_as_rel.py), serial-2 form",
             f"# {total} ASes, seed {seed}"]
    customers = {a: 0 for a in t1 + t2 + t3}

    def pick(pool, k):
        weights = [1 + customers[a] for a in pool]
        chosen = set()
        while len(chosen) < min(k, len(pool)):
            chosen.add(rng.choices(pool, weights)[0])
        return sorted(chosen)

    for i, a in enumerate(t1):
        for b in t1[i + 1:]:
            lines.append(f"{a}|{b}|0|bgp")
    for tier, above in ((t2, t1), (t3, t1 + t2)):
        for a in tier:
            for p in pick(above, rng.choice((1, 2, 2, 3))):
                customers[p] += 1
                lines.append(f"{p}|{a}|-1|bgp")
        for a in tier:                      # some peering inside the tier
            for b in rng.sample(tier, min(len(tier), rng.choice((0, 1, 2)))):
                if a < b:
                    lines.append(f"{a}|{b}|0|mlp")
    for a in stubs:
        for p in pick(t2 + t3, rng.choice((1, 1, 2))):
            customers[p] += 1
            lines.append(f"{p}|{a}|-1|bgp")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gen_as_rel.py", description=__doc__.splitlines()[0])
    p.add_argument("--ases", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("-o", "--output", default="-")
    args = p.parse_args(argv)
    text = generate(args.ases, args.seed)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
