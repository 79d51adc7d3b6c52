#!/usr/bin/env python3
"""The students' page over a live class lab: a group logs in, the page shows the matrix the TA
measured, a looking-glass command runs on a real router; timed, and screenshotted.

    sudo python3 bench/students_page_live.py [--topology topologies/class.yaml]
                                             [--screenshot docs/img/students-page-60-live.png]

Where bench/students_page.py measures the page alone (synthetic matrix, no lab), this brings the
topology up as a lab (a copy under a unique name, with a `class:` section on free loopback ports),
runs `minet matrix` (the TA's measurement, kept by the controller), reads a door's credentials
from `minet class doors --json`, and drives headless chromium: login, time to the page's ready
mark (matrix and connections drawn), `show bgp summary` in the looking glass on a configured
router, then the screenshot. The lab is removed at the end and checked to leave nothing.
Needs root, Open vSwitch, FRR, sshd, chromium + chromedriver + selenium.
Results: bench/results/students_page_live-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import lab_up as common                                   # noqa: E402  (machine, check_root)
from minet_sdn.lab.lab import Lab                         # noqa: E402
from minet_sdn.topology import load_topology              # noqa: E402
from watch_browser import browser_missing, js_text, start_browser, wait_for  # noqa: E402


def free_port_base(n: int = 8) -> int:
    for _ in range(50):
        base = 40000 + secrets.randbelow(20000)
        if all(socket.socket().connect_ex(("127.0.0.1", base + i)) != 0 for i in range(n)):
            return base
    raise RuntimeError("no free loopback ports")


def minet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topology", default=os.path.join(ROOT, "topologies", "class.yaml"))
    p.add_argument("--screenshot", default=None, help="PNG to write (default: none)")
    args = p.parse_args()
    common.check_root()
    missing = browser_missing()
    if missing:
        print(f"bench/students_page_live.py: {missing}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="minet-pagelive-")
    os.environ["MINET_CLASS_DIR"] = os.path.join(tmp, "class")
    base = free_port_base()
    name = f"pl{secrets.token_hex(2)}"
    with open(args.topology) as fh:
        text = fh.read()
    text = text.replace("\nname: class\n", f"\nname: {name}\n", 1) if "\nname: class\n" in text else text
    assert f"name: {name}" in text, "the topology's `name: class` line was not found"
    path = os.path.join(tmp, "topology.yaml")
    with open(path, "w") as fh:
        fh.write(text + f"\nclass: {{port_base: {base}}}\n")
    topo = load_topology(path)
    result = {"benchmark": "students_page_live", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": "sudo python3 bench/students_page_live.py " + " ".join(sys.argv[1:]),
              "host": common.machine(), "topology": os.path.relpath(args.topology, ROOT),
              "ases": len(topo.ases), "routers": sum(len(a.routers) for a in topo.ases.values())}
    lab = Lab(path, progress=lambda m: print(m, flush=True))
    try:
        t0 = time.monotonic()
        lab.up()
        result["lab_up_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        proc = minet("matrix", path, "--json")
        result["matrix_s"] = round(time.monotonic() - t0, 1)
        if proc.returncode != 0:
            raise RuntimeError(f"minet matrix: {proc.stderr.strip()}")
        measured = json.loads(proc.stdout)
        result["matrix"] = {"ok": measured["ok"], "total": measured["total"]}
        doors = json.loads(minet("class", "doors", path, "--json").stdout)["doors"]
        door = sorted(doors, key=lambda d: d["group"])[-1]
        result["group"] = door["group"]
        router = next(f"{asn}.{r}" for asn, a in sorted(topo.ases.items()) if a.configure for r in a.routers)
        drv = start_browser(1400, 1400)
        try:
            t0 = time.monotonic()
            drv.get(f"http://127.0.0.1:{base}/")
            if not wait_for(lambda: drv.find_element("id", "sec-login").is_displayed(), 30):
                raise RuntimeError("the login form did not show")
            drv.find_element("id", "login-user").send_keys(door["user"])
            drv.find_element("id", "login-password").send_keys(door["password"])
            t_login = time.monotonic()
            drv.find_element("id", "login-go").click()
            if not wait_for(lambda: drv.execute_script("return document.body.dataset.ready") == "1", 60):
                raise RuntimeError("the page did not become ready after login")
            result["login_to_ready_s"] = round(time.monotonic() - t_login, 3)
            result["matrix_summary"] = js_text(drv, "matrix-summary")
            drv.execute_script("document.getElementById('lg-router').value = arguments[0];", router)
            cmd = drv.find_element("id", "lg-command")
            cmd.clear()
            cmd.send_keys("show bgp summary")
            t0 = time.monotonic()
            drv.find_element("id", "lg-go").click()
            if not wait_for(lambda: drv.execute_script(
                    "return document.getElementById('lg-out').dataset.done") == "1", 60):
                raise RuntimeError("the looking glass did not answer")
            result["looking_glass_s"] = round(time.monotonic() - t0, 3)
            out = js_text(drv, "lg-out") or ""
            result["looking_glass_ok"] = "BGP router identifier" in out
            result["looking_glass_router"] = router
            if args.screenshot:
                drv.execute_script("window.scrollTo(0, 0);")
                drv.save_screenshot(args.screenshot)
                result["screenshot"] = args.screenshot
        finally:
            drv.quit()
    finally:
        t0 = time.monotonic()
        left = lab.remove()
        result["lab_down_s"] = round(time.monotonic() - t0, 1)
        result["left"] = left
    out = os.path.join(ROOT, "bench", "results",
                       f"students_page_live-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(result, fh, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "host"}, indent=1))
    print(f"saved {os.path.relpath(out, ROOT)}")
    return 0 if result.get("looking_glass_ok") and not left else 1


if __name__ == "__main__":
    sys.exit(main())
