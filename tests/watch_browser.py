"""Headless Debian chromium driven by Selenium (system chromedriver: nothing is downloaded), and a
fake controller service for the status page (what the os-ken app offers the REST layer)."""
from __future__ import annotations

import os
import shutil
import time
from typing import Callable, Optional

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_missing() -> Optional[str]:
    """Why a browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401  (a probe, not a use: the browser tests skip without it)
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is not installed"
    return None


def start_browser(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def wait_for(pred: Callable[[], object], timeout: float, interval: float = 0.05):
    """pred()'s first truthy value within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred()
        except Exception:          # element not there yet, page re-rendering
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


class FakeService:
    """The controller as the REST layer sees it, with operator failures and moving counters."""

    rest_token = "test-token-" + "x" * 32      # what writes need (rest/auth.py)

    def __init__(self, topo):
        self.topo = topo
        self.failed = set()
        self.t0 = time.time()

    def health(self):
        n = len(self.topo.bridges)
        return {"status": "ok", "topology": self.topo.name, "switches": n, "connected": n, "synced": n}

    def links(self):
        out = []
        for l in self.topo.links:
            v = {"id": l.id, "a": {"router": l.a.router, "server": l.a.server},
                 "b": {"router": l.b.router, "server": l.b.server}, "rel": l.rel, "remote": l.remote,
                 "state": "failed" if l.id in self.failed else "up", "tunnel_live": True if l.remote else None}
            if l.remote:
                n = int((time.time() - self.t0) * 10 * l.id)
                v["counters"] = {l.a.server: {"packets": n, "bytes": 100 * n}, l.b.server: {"packets": n, "bytes": 100 * n}}
            out.append(v)
        return out

    def switches(self):
        return [{"dpid": f"{d:016x}", "name": b.name, "server": b.server, "peer": b.peer, "connected": True,
                 "synced": True, "tunnel_live": True, "links": len(b.link_ids), "flows": 3 * len(b.link_ids) + 2}
                for d, b in self.topo.bridges.items()]

    def link(self, link_id):
        return next(v for v in self.links() if v["id"] == link_id)

    def fail_link(self, link_id):
        self.failed.add(link_id)
        return self.link(link_id)

    def restore_link(self, link_id):
        self.failed.discard(link_id)
        return self.link(link_id)


# The page re-renders its tables every second: read and click through one script each, so no
# element reference can go stale between finding it and using it.

def js_class(drv, element_id: str) -> Optional[str]:
    return drv.execute_script("const e = document.getElementById(arguments[0]); return e ? e.className : null;",
                              element_id)


def js_text(drv, element_id: str) -> Optional[str]:
    return drv.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : null;",
                              element_id)


def js_click(drv, selector: str) -> bool:
    return drv.execute_script("const e = document.querySelector(arguments[0]); if (!e) return false; "
                              "e.click(); return true;", selector)


def js_count(drv, selector: str) -> int:
    return drv.execute_script("return document.querySelectorAll(arguments[0]).length;", selector)
