"""A class-sized matrix reaches the status pages: the REST server's body bound grows with the
topology (a 60-AS matrix is ~175 KB; the fixed 64 KiB bound refused it with 413, and `minet
matrix` said nothing), and `minet matrix` says in one line when a round was not stored."""
import io
import json

from minet_sdn.rest.bodies import MAX_ERROR, matrix_body_bound
from minet_sdn.rest.server import MAX_BODY, limit_body
from minet_sdn.watch import cli as watch_cli
from minet_sdn.watch import matrix as M


def worst_record(n: int) -> bytes:
    """The biggest record `minet matrix` sends for n ASes: every pair with the longest round trip
    and the highest AS numbers, every AS with an error text as long as the server keeps."""
    asns = list(range(65535 - n + 1, 65536))
    m = M.Matrix(asns=asns, at=1_700_000_000.123, seconds=123.45, name="x" * 64, family=4)
    for s in asns:
        for d in asns:
            if s != d:
                m.rtt[(s, d)] = 599_999.999
    m.errors = {a: "e" * MAX_ERROR for a in asns}
    return json.dumps(m.to_record()).encode()


def through(max_body: int, raw: bytes) -> int:
    seen = {}

    def app(environ, start_response):
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"{}"]
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}
    status = {}
    list(limit_body(app, max_body)(env, lambda s, h: status.update(code=int(s.split()[0]))))
    assert status["code"] != 200 or seen["body"] == raw
    return status["code"]


def test_the_whole_matrix_of_a_class_fits_the_bound_and_the_fixed_bound_was_too_small():
    for n in (6, 30, 60, 120):
        raw = worst_record(n)
        assert len(raw) <= matrix_body_bound(n), n
        assert through(max(MAX_BODY, matrix_body_bound(n)), raw) == 200
    assert through(MAX_BODY, worst_record(60)) == 413          # what happened at class size


def test_the_bound_stays_finite_for_a_huge_topology():
    assert matrix_body_bound(100_000) == 64 << 20


def test_minet_matrix_warns_once_per_reason_when_the_round_is_not_stored(monkeypatch, capsys):
    answers = iter([(413, {"error": "request body too large (at most 65536 bytes)"})] * 2 + [None, (200, {})])
    monkeypatch.setattr(watch_cli, "controller_call", lambda *a, **k: next(answers))
    m = M.Matrix(asns=[1, 2], at=0.0, seconds=0.0, name="t", family=4)
    warned: set = set()
    results = [watch_cli._push_matrix("t.yaml", None, m, warned) for _ in range(4)]
    assert results == [False, False, False, True]
    err = capsys.readouterr().err.splitlines()
    assert err == ["minet matrix: warning: the status pages do not show this matrix (the controller answered "
                   "413: request body too large (at most 65536 bytes))",
                   "minet matrix: warning: the status pages do not show this matrix (the controller did not answer)"]
