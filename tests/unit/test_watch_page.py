"""The status page: its JSON and routes through the WSGI app (fake controller service), and the
page itself in headless chromium: it renders, a failed link turns red, the matrix shows the cells
of a cut-off AS red, fail/restore from the page asks for confirmation."""
from __future__ import annotations

import importlib
import io
import json
import os
import time

import pytest

from minet_sdn.rest import page as rest_page
from minet_sdn.watch import page
from minet_sdn.rest.api import make_app
from minet_sdn.rest.server import serve_in_thread
from minet_sdn.topology import load_topology
from minet_sdn.watch.matrix import Matrix, targets
from tests.watch_browser import (FakeService, browser_missing, js_class, js_click, js_count, js_text,
                                 start_browser, wait_for)

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "demo.yaml")


@pytest.fixture
def svc(monkeypatch):
    monkeypatch.setattr(page, "read_bgp", lambda places: {"at": time.time(), "ases": [
        {"asn": a, "server": s.server, "configure": s.configure, "routers": len(s.routers), "answered": len(s.routers),
         "established": 2, "sessions": 2} for a, s in sorted(places.topo.ases.items())]})
    view = page.StatusPage("/nonexistent/state")
    rest_page.install(view)             # as `minet controller` does
    yield FakeService(load_topology(DEMO))
    rest_page.uninstall(view)


def call(app, method, path, body=None, ctype="application/json", csrf=True):
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_TYPE": ctype if body is not None else "",
           "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}
    if csrf and method == "POST":
        env["HTTP_X_MINET"] = "1"
    got = {}

    def start(status, headers):
        got["status"], got["headers"] = int(status.split()[0]), dict(headers)
    data = b"".join(app(env, start))
    if got["headers"]["Content-Type"].startswith("application/json"):
        return got["status"], json.loads(data)
    return got["status"], data


def partition_matrix(topo, cut):
    tg = targets(topo)
    m = Matrix(asns=[t.asn for t in tg], at=time.time(), name=topo.name, seconds=0.4)
    for s in m.asns:
        for d in m.asns:
            if s != d:
                m.rtt[(s, d)] = None if (s in cut) != (d in cut) else 0.5
    return m


def test_bgp_counts():
    text = json.dumps({"ipv4Unicast": {"peers": {"100.64.0.2": {"state": "Established"}, "10.1.0.2": {"state": "Active"}}},
                       "ipv6Unicast": {"peers": {"100.64.0.2": {"state": "Established"}}}})
    assert page.bgp_counts(text) == (1, 2)
    assert page.bgp_counts(None) is None and page.bgp_counts("not json") is None
    assert page.bgp_counts("{}") == (0, 0)
    text = json.dumps({"ipv4Unicast": {"peers": {"100.64.0.2": {"state": "Established", "remoteAs": 2},
                                                 "100.64.0.6": {"state": "Active", "remoteAs": 6}}}})
    assert page.bgp_counts(text, ignore_as={6}) == (1, 1)      # sessions to students' ASes not counted


def test_routes(svc):
    app = make_app(svc)
    code, html = call(app, "GET", "/ui")
    assert code == 200 and b"<title>minet status</title>" in html
    code, st = call(app, "GET", "/v1/watch/status")
    assert code == 200 and st["name"] == "demo" and st["matrix"] is None
    assert {s["name"] for s in st["servers"]} == {"VM1", "VM2", "VM3"} and len(st["links"]) == 10
    assert "1.ZURI" in st["lg"]["routers"] and "show bgp" in st["lg"]["allowed"]
    m = partition_matrix(svc.topo, {5})
    code, ans = call(app, "POST", "/v1/watch/matrix", m.to_record())
    assert code == 200 and ans == {"stored": True, "ok": 12, "total": 20}
    code, got = call(app, "GET", "/v1/watch/matrix")
    assert got["matrix"]["ok"] == 12 and got["matrix"]["asns"] == [1, 2, 3, 4, 5]
    assert call(app, "POST", "/v1/watch/matrix", {"nope": 1})[0] == 400
    assert call(app, "POST", "/v1/watch/matrix", b"x", ctype="text/plain")[0] == 400     # no cross-site form posts
    assert call(app, "GET", "/v1/watch/lg")[0] == 405
    code, ans = call(app, "POST", "/v1/watch/lg", {"router": "1.ZURI", "command": "configure terminal"})
    assert code == 400 and ans["error"].startswith("refused:")
    assert call(app, "GET", "/v1/watch/nope")[0] == 404
    assert call(app, "GET", "/v1/links")[0] == 200                    # the API itself is untouched


def test_graph_svg_follows_link_states(svc):
    importlib.import_module("graphviz")          # a declared dependency: missing must fail, not skip
    app = make_app(svc)
    code, svg = call(app, "GET", "/v1/watch/graph.svg")
    assert code == 200 and b"<svg" in svg and b"all up" in svg
    svc.failed.add(1)
    code, svg2 = call(app, "GET", "/v1/watch/graph.svg")
    assert b"1 link not up" in svg2 and b"failed" in svg2


@pytest.fixture
def served(svc):
    why = browser_missing()
    if why:
        pytest.skip(why)
    server = serve_in_thread(("127.0.0.1", 0), make_app(svc))
    drv = start_browser()
    try:
        yield svc, f"http://127.0.0.1:{server.server_port}", drv
    finally:
        drv.quit()
        server.shutdown()
        server.server_close()


def row_state(drv, link_id):
    return js_class(drv, f"link-{link_id}")


def test_page_in_browser(served):
    from selenium.webdriver.common.by import By
    svc, base, drv = served
    drv.get(base + "/ui")
    assert wait_for(lambda: js_count(drv, "#links tbody tr") == 10, 5)
    assert "no matrix yet" in js_text(drv, "matrixsum")
    assert wait_for(lambda: (js_text(drv, "bgp-1") or "").startswith("AS1"), 5)
    # a failure (here straight on the service, as the controller would see it) turns the row red
    drv.execute_script("window.minetNotReloaded = true")
    svc.failed.add(3)
    assert wait_for(lambda: row_state(drv, 3) == "link-failed", 2.0)
    red = drv.execute_script("return getComputedStyle(document.querySelector('#link-3 td')).backgroundColor")
    assert red == "rgb(252, 232, 230)", red
    assert row_state(drv, 2) == "link-up"
    assert drv.execute_script("return window.minetNotReloaded === true")      # updated in place, no reload
    # the matrix of a round where AS5 is cut off: its cells red, the others green
    assert call(make_app(svc), "POST", "/v1/watch/matrix", partition_matrix(svc.topo, {5}).to_record())[0] == 200
    assert wait_for(lambda: js_class(drv, "m-1-5"), 3)
    for (s, d), want in {(1, 5): "bad", (5, 1): "bad", (5, 3): "bad", (1, 2): "ok", (3, 4): "ok"}.items():
        assert js_class(drv, f"m-{s}-{d}") == want
    assert "12/20" in js_text(drv, "matrixsum")
    # fail link 1 from the page: a confirmation first; cancel does nothing, confirm fails it
    assert js_click(drv, "button[data-act=fail][data-id='1']")
    assert wait_for(lambda: drv.find_element(By.ID, "confirm").is_displayed(), 2)
    assert "Fail link 1" in drv.find_element(By.ID, "confirm-text").text
    drv.find_element(By.ID, "confirm-no").click()
    time.sleep(0.3)            # deliberately: a window in which cancel must NOT fail the link
    assert 1 not in svc.failed
    assert js_click(drv, "button[data-act=fail][data-id='1']")
    assert wait_for(lambda: drv.find_element(By.ID, "confirm").is_displayed(), 2)
    drv.find_element(By.ID, "confirm-yes").click()
    assert wait_for(lambda: 1 in svc.failed, 2)
    assert wait_for(lambda: row_state(drv, 1) == "link-failed", 2)
    # looking glass: a refused command shows the refusal
    box = drv.find_element(By.ID, "lgcmd")
    box.clear()
    box.send_keys("clear ip bgp all")
    drv.find_element(By.CSS_SELECTOR, "#lgform button").click()
    assert wait_for(lambda: "refused" in js_text(drv, "lgout"), 3)


def test_the_controller_serves_no_page_unless_one_is_installed():
    """The page is not the controller's: without `minet controller` installing it, /ui is a 404."""
    app = make_app(FakeService(load_topology(DEMO)))
    assert call(app, "GET", "/ui")[0] == 404 and call(app, "GET", "/v1/watch/status")[0] == 404
    assert call(app, "GET", "/v1/links")[0] == 200


def test_bgp_is_read_from_the_routers_places(monkeypatch):
    """The BGP panel asks each configured router at the place the page was given (state root and
    backend), as on a real server; a router that does not answer is not counted."""
    from minet_sdn.topology.places import build_places
    from minet_sdn.watch import nodes
    topo = load_topology(DEMO)
    view = page.StatusPage(page.root_of("/lab/{server}/provision"), "docker")
    places = view.places(topo)
    assert view.places(topo) is places                      # once per topology
    assert places["1.ZURI"].frr_dir == build_places(topo, "/lab/VM1/provision")["1.ZURI"].frr_dir
    asked = []
    summary = json.dumps({"ipv4Unicast": {"peers": {"100.64.0.2": {"state": "Established", "remoteAs": 2}}}})

    def fake_run(argv, timeout):
        asked.append(argv)
        return (0, summary, "") if "1.ZURI" in argv[argv.index("--vty_socket") + 1] else (1, "", "no")
    monkeypatch.setattr(nodes, "run", fake_run)
    got = page.read_bgp(places)
    configured = [r for r, a in topo.routers.items() if a.configure]
    assert sorted(a[a.index("--vty_socket") + 1] for a in asked) == sorted(places[r].frr_dir for r in configured)
    assert all(a[:2] == ["docker", "exec"] for a in asked)
    as1 = next(r for r in got["ases"] if r["asn"] == 1)
    assert (as1["answered"], as1["established"], as1["sessions"]) == (1, 1, 1)
    assert page.root_of("/var/lib/minet-sdn") == "/var/lib/minet-sdn"
