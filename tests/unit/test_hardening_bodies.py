"""Issue 21 item 3: one request must not take the controller's memory, nor break the status page.

Against the REST app with the status page's fake service (demo topology: ASes 1..5)."""
import io
import json
import tracemalloc

import pytest

from minet_sdn.rest.api import make_app
from minet_sdn.topology import load_topology

from tests.unit.test_watch_page import DEMO, partition_matrix
from tests.watch_browser import FakeService


@pytest.fixture
def app():
    from minet_sdn.rest import page as rest_page
    from minet_sdn.watch.page import StatusPage
    svc = FakeService(load_topology(DEMO))
    view = StatusPage("/nonexistent/state")
    rest_page.install(view)             # the /v1/watch routes are the status page's, as `minet controller` installs it
    try:
        yield svc, make_app(svc)
    finally:
        rest_page.uninstall(view)


def post(app, path, raw: bytes):
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_TYPE": "application/json",
           "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw), "HTTP_X_MINET": "1",
           "HTTP_AUTHORIZATION": f"Bearer {FakeService.rest_token}"}
    got = {}
    body = b"".join(app(env, lambda status, headers: got.update(status=int(status.split()[0]))))
    return got["status"], json.loads(body)


def stored(app):
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/watch/matrix"}
    body = b"".join(app(env, lambda status, headers: None))
    return json.loads(body.decode(), parse_constant=lambda c: pytest.fail(f"{c} stored: JSON.parse would fail"))


def test_a_matrix_of_many_unknown_ases_is_refused_without_growing_memory(app):
    """Before: 4,000 ASes in 23 KB grew the controller to 3 GB (N^2 pairs). Here 700 ASes (about
    350 times this body's size in pair records before the fix)."""
    svc, wsgi = app
    raw = json.dumps({"pairs": [], "asns": list(range(1, 701))}).encode()
    tracemalloc.start()
    try:
        status, answer = post(wsgi, "/v1/watch/matrix", raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 400 and "topology" in answer["error"], answer
    assert peak < 40 * len(raw) + (1 << 20), peak           # linear in the request, nothing N^2
    assert stored(wsgi)["matrix"] is None


@pytest.mark.parametrize("body, why", [
    ({"pairs": [{"src": 1, "dst": 9999, "ok": True, "rtt_ms": 1}]}, "not in the topology"),
    ({"pairs": [{"src": 1, "dst": 1, "ok": True, "rtt_ms": 1}]}, "pair"),
    ({"pairs": [{"src": 1, "dst": 2, "ok": True, "rtt_ms": 1}] * 2}, "pair"),
    ({"pairs": [{"src": True, "dst": 2, "ok": True, "rtt_ms": 1}]}, "integer"),
    ({"pairs": [{"src": 1, "dst": 2, "ok": "yes", "rtt_ms": 1}]}, "true or false"),
    ({"pairs": [{"src": 1, "dst": 2, "ok": True, "rtt_ms": -1}]}, "number"),
    ({"pairs": [], "asns": [1, 1]}, "twice"),
    ({"pairs": [], "name": "x" * 1000}, "name"),
    ({"pairs": [], "errors": {"77": "x"}}, "errors"),
    ({"pairs": [{"src": s, "dst": d, "ok": True} for s in range(1, 6) for d in range(1, 6)] * 2}, "pairs"),
])
def test_a_matrix_must_name_the_topologys_ases_once_each(app, body, why):
    status, answer = post(app[1], "/v1/watch/matrix", json.dumps(body).encode())
    assert status == 400 and why in answer["error"], answer


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_and_the_stored_matrix_stays_strict_json(app, constant):
    svc, wsgi = app
    good = partition_matrix(svc.topo, {5}).to_record()
    assert post(wsgi, "/v1/watch/matrix", json.dumps(good).encode())[0] == 200
    bad = json.dumps(good).replace('"rtt_ms": 0.5', f'"rtt_ms": {constant}', 1)
    assert constant in bad
    status, answer = post(wsgi, "/v1/watch/matrix", bad.encode())
    assert status == 400 and "not JSON" in answer["error"], answer
    assert stored(wsgi)["matrix"]["ok"] == good["ok"]        # the earlier round, still parseable


def test_deep_nesting_is_refused(app):
    raw = b"[" * 5000 + b"]" * 5000
    status, answer = post(app[1], "/v1/watch/lg", raw)
    assert status == 400 and ("deeper" in answer["error"] or "not JSON" in answer["error"]), answer


def test_a_good_matrix_is_kept(app):
    svc, wsgi = app
    m = partition_matrix(svc.topo, {5}).to_record()
    status, answer = post(wsgi, "/v1/watch/matrix", json.dumps(m).encode())
    assert status == 200 and answer["ok"] == 12 and answer["total"] == 20
    assert stored(wsgi)["matrix"]["asns"] == [1, 2, 3, 4, 5]
