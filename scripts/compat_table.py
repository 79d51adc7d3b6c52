"""Write docs/compat.md: which mini-Internet folder formats `minet import mini-internet` reads.

    python scripts/compat_table.py [--out docs/compat.md] [--upstream DIR]

For every fixture folder of tests/fixtures/mini_internet/ (written for minet-sdn in each upstream
format) it runs import and `minet validate`, and records the plan, the size and the notes. With
--upstream DIR (a directory holding local extracts of the upstream folders, one sub-directory per
folder, named as in UPSTREAM below; never committed) it also records how each of the 25 upstream
folders fares. `lab up` is not run here (it needs root and minutes): the lab column repeats what
the end-to-end tests check (tests/e2e/test_import_e2e.py), marked as such.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from minet_sdn.cli.main import main as minet  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "mini_internet")
FORMATS = {
    "layout2019": "2019 layout: 3-column AS_config, router_config.txt, internal/external_links_config.txt, layer2_*_config.txt, 2019 subnet plan",
    "lists2020": "2020: per-AS throughput lists, external_links_config.txt without Buffer, Subnet N/A, 6-column hosts",
    "old": "2020-2021: external_links_config.txt with Subnet column, NoConfig AS",
    "ixp2022": "2022/23: IXP peering lists naming non-members, RPKI hosts, delays with units",
    "small": "2023 on: aslevel_links.txt with Buffer, IXP",
    "current": "current: ALL rows, layer 2 (2 DCs, VLANs, trunk), L2 tunnel, services, RPKI, default subnet plan",
    "multi": "multi-server form (servers.txt, SERVER column)",
    "missing": "a folder naming a file it does not have (refused in one line)",
    "../mini_internet_lab": "current layout, cut down: ALL rows + RPKI, a configured AS with layer 2 "
                            "(2 DCs, VLANs 10/20, L2 tunnel), a NoConfig AS with layer 2, a stub",
}
E2E = {"small": "up (e2e test: tests/e2e/test_import_e2e.py)",
       "../mini_internet_lab": "up (e2e test: tests/e2e/test_mini_internet_lab_e2e.py)"}
# (label, year, upstream path) of the 25 upstream folders; course variants by their AS_config_N
UPSTREAM: List[Tuple[str, str, str]] = [
    ("platform-2019", "2019", "platform/config @ 58aa43c"),
    ("platform-2020", "2020", "platform/config @ 25f4242"),
    ("platform-2022", "2022", "platform/config @ 92a04e2"),
    ("platform-2023", "2023", "platform/config @ 93e5f45"),
    ("platform-2024", "2024", "platform/config @ 7ecd6b7"),
    ("platform-current", "2025", "platform/config @ c437ca1"),
] + [(f"course-2019-{n}", "2019", f"communication_networks_course/2019_assignment_eth/config_2019 (_{n})")
     for n in (1, 2, 20, 40, 60)] + [
    (f"course-2020-{n}", "2020", f"communication_networks_course/2020_assignment_eth/config_2020 (_{n})")
    for n in (1, 2, 20)] + [
    (f"course-2021-{n}", "2021", f"communication_networks_course/2021_assignement_eth/config_2021 (_{n})")
    for n in (1, 2, 12, 20)] + [
    (f"course-2022-{n}", "2022", f"communication_networks_course/2022_assignment_eth/config_2022 (_{n})")
    for n in (1, 2, 12, 20)] + [
    ("course-2025", "2025", "communication_networks_course/2025_assignment_eth/config_2025"),
    ("advanced-bgp-vpn-mpls", "advanced course", "advanced_networks_course/BGP_VPN_MPLS/build/topo"),
    ("advanced-multicast", "advanced course", "advanced_networks_course/Multicast/build/topo"),
]


# `minet lab up` of an imported upstream folder, run by hand (root, minutes; not part of this script)
LAB_CHECKED = {
    "platform-current": "up on 2 emulated servers in 26 s, 66 s on a loaded machine (two runs, 2026-12-08, "
                        "`minet import mini-internet` then "
                        "`minet lab up --servers 2`): all 48 sessions of the 8 configured routers Established "
                        "(sessions towards the 4 NoConfig ASes stay Active, as upstream leaves them to students); "
                        "plan addresses (1.ZURI: 179.1.2.1/24, 1.151.0.1, host link 1.101.0.2/24; IXP 180.80.0.1); "
                        "layer 2 of the 4 NoConfig ASes present and unconfigured (16 switches, 32 hosts, `ovs-vsctl "
                        "show` on 3.S1 lists 3-FIFA_1, 3-S2, 3-S3, ZURIrouter, no tags); DNS answers "
                        "(`host zuri.group1`, `host 179.1.2.1` -> zuri.group1; `minet measure --from 1 "
                        "host.zuri.group2` traces zuri.group1, zuri.group2, host.zuri.group2); matrix "
                        "over the MATRIX hosts: 28 of 56 pairs, exactly the pairs the policy model gives with the "
                        "students' ASes silent; clean `lab down` (no namespace, process or state left)",
}
def run(argv: List[str]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = minet(argv)
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


def check(folder: str) -> Dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.yaml")
        started = time.monotonic()
        rc, _, err = run(["import", "mini-internet", folder, "-o", path])
        took = time.monotonic() - started
        lines = [line for line in err.strip().splitlines() if line]
        if rc != 0:
            return {"import": "refused", "validate": "-", "what": lines[0] if lines else "", "notes": ""}
        summary = lines[-1].split(": ", 2)[-1] if lines else ""
        notes = sum(1 for line in lines if line.startswith("note:"))
        vrc, _, verr = run(["validate", path])
        plan = next((line.split("plan: ")[1].rstrip("}\n") for line in open(path) if line.startswith("addressing:")),
                    "minet")
        return {"import": f"ok ({took:.1f} s)", "validate": "ok" if vrc == 0 else verr.splitlines()[0],
                "what": f"{summary}; plan {plan}", "notes": f"{notes} notes" if notes else ""}


def table(rows: List[List[str]], head: List[str]) -> List[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "compat.md"))
    ap.add_argument("--upstream", help="local extracts of the 25 upstream folders (not committed)")
    args = ap.parse_args(argv)
    lines = ["# mini-Internet folders: compatibility", "",
             "Produced by `python scripts/compat_table.py` (do not edit by hand). `minet import mini-internet`",
             "reads every configuration-folder format the mini-Internet project has shipped. The fixtures are",
             "folders written for minet-sdn's tests in each format (tests/fixtures/mini_internet/); the lab",
             "column is what the end-to-end tests check (tests/e2e/test_import_e2e.py: the `small` fixture",
             "imported, placed on two servers, up with every session Established on the plan's addresses;",
             "tests/e2e/test_mini_internet_lab_e2e.py: `mini_internet_lab`, the current layout cut down, up",
             "with its layer 2, its hosts reaching their gateway and another AS, DNS answering, clean down).",
             "", "## Fixtures (one per upstream format)", ""]
    rows = []
    for name, what in FORMATS.items():
        r = check(os.path.normpath(os.path.join(FIXTURES, name)))
        lab = E2E.get(name, "-")
        rows.append([f"`{os.path.basename(name)}`", what, r["import"], r["validate"], lab, r["what"] + (f" ({r['notes']})" if r["notes"] else "")])
    lines += table(rows, ["fixture", "format", "import", "validate", "lab up", "result"])
    if args.upstream:
        lines += ["", "## The 25 upstream folders (checked locally against nsg-ethz/mini_internet_project)", "",
                  "Course folders are used as their READMEs say: `AS_config_N.txt` and `aslevel_links_N.txt` copied",
                  "over the unsuffixed names. `lab up` of these is not run by this script; where it was run by hand,",
                  "the lab column says what it showed.", ""]
        rows = []
        for label, year, where in UPSTREAM:
            folder = os.path.join(args.upstream, label)
            if not os.path.isdir(folder):
                rows.append([year, f"`{where}`", "not extracted", "-", "-", ""])
                continue
            r = check(folder)
            rows.append([year, f"`{where}`", r["import"], r["validate"], LAB_CHECKED.get(label, "not run"),
                         r["what"] + (f" ({r['notes']})" if r["notes"] else "")])
        lines += table(rows, ["year", "upstream folder", "import", "validate", "lab up", "result"])
        ok = sum(1 for row in rows if row[2].startswith("ok"))
        lines += ["", f"{ok} of {len(rows)} import; the refused one names its missing file in one line."]
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
