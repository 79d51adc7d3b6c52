"""End to end: watching a running lab of a demo variant where one remote link is the only way to
an AS. demo.yaml without link 7 (2.PARI - 5.ROMA): AS5 (VM3) then hangs off link 6 (1.ZURI -
5.ROMA, VM1-VM3) alone, so failing link 6 cuts AS5 off from ASes 1-4 while those four still reach
each other.

Checked: `minet matrix --json`, and `-6` in IPv6 (every pair reaches; then exactly the AS5 pairs fail; then all come
back), the status page in headless chromium (renders; the link failed through the CLI turns red
within 2 s; the matrix cells of AS5 turn red, the others stay green), `minet lg` (answers a show
command, refuses anything else, also from the page's endpoint), `minet graph` with link states
from the controller. Needs root, Open vSwitch, FRR, sshd, chromium + chromedriver + selenium.
Set MINET_WATCH_SCREENSHOTS=DIR to keep screenshots of the page.
"""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import time

import pytest

from e2e_support import demo_variant, require_lab
from minet_sdn.lab import controller
from minet_sdn.lab.lab import Lab

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from watch_browser import browser_missing, js_class, js_count, js_text, start_browser, wait_for  # noqa: E402

pytestmark = pytest.mark.root

require_lab("vtysh", "ping")
if browser_missing():
    pytest.skip(browser_missing(), allow_module_level=True)

SETTLE_S = 90.0
SHOTS = os.environ.get("MINET_WATCH_SCREENSHOTS")


def drop_link_7(data: dict) -> None:
    del data["links"][6]          # 2.PARI - 5.ROMA: AS5 keeps only link 6 (1.ZURI - 5.ROMA)


def minet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = demo_variant(tmp_path_factory.mktemp("watch"), "w", "watch.yaml", drop_link_7)
    try:
        Lab(path, progress=lambda m: None).up()
        yield path
    finally:
        Lab(path, progress=lambda m: None).down()


def matrix(path: str, family: int = 4) -> dict:
    proc = minet("matrix", path, "--json", *(["-6", "--no-push"] if family == 6 else []))
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert set(obj) == {"pairs", "ok", "total", "family"} and obj["family"] == family
    return obj


def failing(obj: dict) -> set:
    return {(p["src"], p["dst"]) for p in obj["pairs"] if not p["ok"]}


def wait_matrix(path: str, want_failing: set, timeout: float = SETTLE_S, family: int = 4) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        obj = matrix(path, family)
        if failing(obj) == want_failing or time.monotonic() > deadline:
            return obj
        time.sleep(1)


def link_id(path: str, a: str, b: str) -> int:
    from minet_sdn.topology import load_topology
    return next(l.id for l in load_topology(path).links if (l.a.router, l.b.router) == (a, b))


def test_watch_partition(lab):
    ases = [1, 2, 3, 4, 5]
    cut5 = {(s, d) for s in ases for d in ases if s != d and 5 in (s, d)}
    obj = wait_matrix(lab, set())
    assert obj["total"] == 20 and obj["ok"] == 20, failing(obj)
    assert all(isinstance(p["rtt_ms"], float) for p in obj["pairs"])
    obj6 = wait_matrix(lab, set(), family=6)                  # the same hosts' IPv6 addresses
    assert obj6["total"] == 20 and obj6["ok"] == 20, failing(obj6)

    grid = minet("matrix", lab)
    assert grid.returncode == 0 and "total: all 20 pairs reach" in grid.stdout, grid.stdout + grid.stderr

    base = Lab(lab).status(json=True)["mgmt"]["rest_relay"]
    drv = start_browser()
    try:
        drv.get(base + "/ui")
        assert wait_for(lambda: js_count(drv, "#links tbody tr") == 9, 10)
        assert wait_for(lambda: js_class(drv, "m-1-5") == "ok", 5)
        assert wait_for(lambda: "2/2" in (js_text(drv, "bgp-1") or ""), 20)   # AS1: both routers answer
        if SHOTS:              # screenshots only: one more round of the page's 1 s poll draws all of it
            time.sleep(1.5)
            drv.save_screenshot(os.path.join(SHOTS, "status-demo-ok.png"))

        lid = link_id(lab, "1.ZURI", "5.ROMA")
        t0 = time.monotonic()
        proc = minet("link", "fail", lab, str(lid))
        assert proc.returncode == 0, proc.stderr
        cli_s = time.monotonic() - t0
        red = wait_for(lambda: js_class(drv, f"link-{lid}") == "link-failed", 2.0)
        assert red, f"link {lid} not red on the page 2 s after `minet link fail` returned ({cli_s:.2f} s)"

        obj = wait_matrix(lab, cut5)
        assert failing(obj) == cut5, sorted(failing(obj) ^ cut5)
        assert obj["ok"] == 12
        obj6 = wait_matrix(lab, cut5, family=6)               # the link carries both families
        assert failing(obj6) == cut5, sorted(failing(obj6) ^ cut5)
        # the CLI sent that round to the controller: the page shows AS5's cells red, the rest green
        assert wait_for(lambda: js_class(drv, "m-5-1") == "bad", 3)
        for s in ases:
            for d in ases:
                if s != d:
                    want = "bad" if (s, d) in cut5 else "ok"
                    assert js_class(drv, f"m-{s}-{d}") == want, (s, d)
        if SHOTS:              # screenshots only: one more round of the page's 1 s poll draws all of it
            time.sleep(1.5)
            drv.save_screenshot(os.path.join(SHOTS, "status-demo-failed.png"))

        svg = os.path.join(os.path.dirname(lab), "graph.svg")
        proc = minet("graph", lab, "-o", svg)
        assert proc.returncode == 0, proc.stderr
        text = html.unescape(open(svg).read())
        assert "1 link not up" in text and f"link {lid}: 1.ZURI - 5.ROMA, provider, remote VM1-VM3, failed" in text
    finally:
        drv.quit()
        minet("link", "restore", lab, str(lid))
    obj = wait_matrix(lab, set())
    assert obj["ok"] == 20, failing(obj)
    assert wait_matrix(lab, set(), family=6)["ok"] == 20


def test_looking_glass(lab):
    proc = minet("lg", lab, "1", "show bgp summary")
    assert proc.returncode == 0, proc.stderr
    assert "BGP router identifier" in proc.stdout and "10.1.0.1" in proc.stdout
    proc = minet("lg", lab, "5.ROMA", "show", "ip", "route", "10.1.0.0/16")
    assert proc.returncode == 0 and "10.1.0.0/16" in proc.stdout, proc.stdout + proc.stderr
    for bad in (["configure terminal"], ["clear", "ip", "bgp", "*"], ["show running-config"]):
        proc = minet("lg", lab, "1", *bad)
        assert proc.returncode == 2 and "refused" in proc.stderr and not proc.stdout, (bad, proc)
    code, body = controller.rest_call(lab, "POST", "/v1/watch/lg",
                                      {"router": "2.PARI", "command": "show bgp summary json"})
    assert code == 200 and body["rc"] == 0 and json.loads(body["output"])["ipv4Unicast"]["as"] == 2
    code, body = controller.rest_call(lab, "POST", "/v1/watch/lg", {"router": "2.PARI", "command": "write memory"})
    assert code == 400 and body["error"].startswith("refused")
