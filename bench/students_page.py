#!/usr/bin/env python3
"""The students' page at class size: page weight and render time in real headless chromium.

    python3 bench/students_page.py [--topology topologies/class.yaml] [--repeat 5]
                                   [--screenshot docs/img/students-page-60.png]

No lab: the page's app (classroom/page.py) is served on loopback by the same hardened server the
lab uses, over the topology's real connections, with a SYNTHETIC matrix computed from the
topology (every pair of configured ASes reaches, as `minet matrix` would report for a healthy
lab; round trips made up from the AS numbers): the render cost depends on the matrix's size, not
on its values. The
looking glass and measure runners are stubs (this measures the page, not vtysh).

Measured, per topology: bytes of everything the page loads (HTML, JS, CSS, /api/info, /api/matrix,
/api/connections), time from navigation to the page's `ready` mark (logged in, matrix and
connections drawn), and the JS time of drawing the matrix and the connection list. The reference,
in the same run, is the demo topology (6 ASes): figures are also given as ratios to it. Results go
to bench/results/students_page-<date>.json. Needs chromium, chromedriver and selenium; no root.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from minet_sdn.classroom.page import StudentsPage, password_checker  # noqa: E402
from minet_sdn.rest.server import serve_in_thread  # noqa: E402
from minet_sdn.topology import load_topology  # noqa: E402

USER, PASSWORD = "as59-class", "bench-password-59"


def synthetic_matrix(topo) -> dict:
    """What `minet matrix` sends for a healthy lab of `topo`: every pair of CONFIGURED ASes (the
    matrix measures those only) reaching, round trips made up from the AS numbers."""
    asns = sorted(a for a, s in topo.ases.items() if s.configure)
    pairs = [{"src": s, "dst": d, "ok": True, "rtt_ms": round(0.4 + ((s * 7 + d * 13) % 40) / 10, 2)}
             for s in asns for d in asns if s != d]
    return {"pairs": pairs, "ok": len(pairs), "total": len(pairs), "family": 4, "asns": asns, "at": time.time(),
            "name": topo.name}


def serve(topo, access: str):
    matrix = synthetic_matrix(topo)
    asn = max(topo.ases)
    app = StudentsPage(topo, access, password_checker(lambda: {USER: (asn, PASSWORD)}), lambda: matrix,
                       lambda r, c: (0, ""), lambda a, t, d: (0, ""))
    server = serve_in_thread(("127.0.0.1", 0), app)
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def weight(base: str, cookie: str) -> dict:
    out = {}
    for path in ("/", "/static/students.js", "/static/students.css", "/api/info", "/api/matrix", "/api/connections"):
        req = urllib.request.Request(base + path, headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=30) as resp:
            out[path] = len(resp.read())
    return out


def login_cookie(base: str) -> str:
    req = urllib.request.Request(base + "/api/login", data=json.dumps({"user": USER, "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Set-Cookie"].split(";")[0]


def render_once(drv, base: str) -> dict:
    drv.get(base + "/")
    deadline = time.monotonic() + 60
    while drv.execute_script("return document.body.dataset.ready") != "1":
        if time.monotonic() > deadline:
            raise RuntimeError("the page did not get ready within 60 s")
        time.sleep(0.01)
    return drv.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "return {ready_ms: performance.now(), dom_ms: nav ? nav.domContentLoadedEventEnd : null,"
        " matrix_ms: window.minetRendered.matrix, connections_ms: window.minetRendered.connections,"
        " cells: document.querySelectorAll('#matrix td').length, rows: document.querySelectorAll('#conn tr.conn').length};")


def measure(path: str, repeat: int) -> dict:
    from watch_browser import start_browser
    topo = load_topology(path)
    server, base = serve(topo, "groups")
    drv = start_browser()
    try:
        cookie = login_cookie(base)
        drv.get(base + "/api/info")                   # the origin, so the cookie can be set
        drv.add_cookie({"name": cookie.split("=", 1)[0], "value": cookie.split("=", 1)[1], "path": "/"})
        render_once(drv, base)                        # warm: chromium's caches, the server's first reads
        runs = [render_once(drv, base) for _ in range(repeat)]
        sizes = weight(base, cookie)
    finally:
        drv.quit()
        server.shutdown()
        server.server_close()
    med = {k: round(statistics.median(r[k] for r in runs), 1) for k in ("ready_ms", "matrix_ms", "connections_ms")}
    return {"topology": os.path.relpath(path, ROOT), "ases": len(topo.ases), "routers": len(topo.routers),
            "links": len(topo.links), "cells": runs[0]["cells"], "connection_rows": runs[0]["rows"],
            "bytes": sizes, "total_bytes": sum(sizes.values()), "median": med, "runs": runs}


def screenshot(path: str, out: str) -> None:
    """chromium --headless --screenshot of a public page of `path` (no login form in the way)."""
    from watch_browser import CHROMIUM
    topo = load_topology(path)
    server, base = serve(topo, "public")
    try:
        subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1400,1500", "--virtual-time-budget=10000", f"--screenshot={out}", base + "/"],
                       check=True, capture_output=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--topology", default=os.path.join(ROOT, "topologies", "class.yaml"))
    p.add_argument("--reference", default=os.path.join(ROOT, "topologies", "demo.yaml"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--screenshot", help="also write a screenshot of the page for --topology here")
    args = p.parse_args()
    ref = measure(args.reference, args.repeat)
    big = measure(args.topology, args.repeat)
    ratios = {k: round(big["median"][k] / ref["median"][k], 2) if ref["median"][k] else None for k in big["median"]}
    ratios["total_bytes"] = round(big["total_bytes"] / ref["total_bytes"], 2)
    result = {"bench": "students_page", "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "reference": ref, "class": big, "ratio_class_to_reference": ratios,
              "matrix": "synthetic (computed from the topology), not measured"}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", f"students_page-{result['date']}.json")
    with open(out, "w") as fh:
        json.dump(result, fh, indent=1)
    for r in (ref, big):
        print(f"{r['topology']}: {r['ases']} ASes, {r['routers']} routers, {r['cells']} matrix cells, "
              f"{r['connection_rows']} connection rows; {r['total_bytes'] / 1024:.0f} KiB loaded "
              f"(matrix {r['bytes']['/api/matrix'] / 1024:.0f} KiB, connections {r['bytes']['/api/connections'] / 1024:.0f} KiB); "
              f"ready {r['median']['ready_ms']:.0f} ms after navigation, matrix drawn in {r['median']['matrix_ms']:.0f} ms, "
              f"connections in {r['median']['connections_ms']:.0f} ms (medians of {args.repeat})")
    print(f"ratios class/reference: {ratios}")
    print(f"results: {out}")
    if args.screenshot:
        screenshot(args.topology, args.screenshot)
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
