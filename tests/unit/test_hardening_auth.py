"""Issue 21, items 2 and 10: writes need the controller's token; the CLI acts only on THIS
instance's controller. Through the app (fake switches) and the real HTTP server on loopback."""
import json
import os
import stat

import pytest

from minet_sdn.cli.main import main
from minet_sdn.rest.api import make_app

from tests.unit.app_harness import one_link_lab
from tests.unit.test_hardening_cli import LINK, FakeRest, one_line

TOKEN_ENV = "MINET_REST_TOKEN_FILE"

@pytest.fixture
def lab(tmp_path):
    return one_link_lab(tmp_path, "auth")


def raw(app, method, path, authorization=None):
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_X_MINET": "1", "CONTENT_LENGTH": "0"}
    if authorization is not None:
        env["HTTP_AUTHORIZATION"] = authorization
    seen = {}
    body = b"".join(app(env, lambda status, headers: seen.update(status=int(status.split()[0]),
                                                                 headers=dict(headers))))
    return seen["status"], seen["headers"], json.loads(body)


def test_writes_without_the_token_are_refused_and_change_nothing(lab):
    app = make_app(lab.app)
    token = getattr(lab.app, "rest_token", None)
    assert token and len(token) >= 32
    for path in ("/v1/links/1/fail", "/v1/reload", "/v1/watch/matrix", "/v1/watch/lg"):
        for authorization, status in ((None, 401), ("", 401), ("Basic eDp4", 401), ("Bearer ", 401),
                                      ("Bearer " + "x" * 43, 403), ("Bearer " + token[:-1], 403)):
            got = raw(app, "POST", path, authorization)
            assert got[0] == status and "error" in got[2], (path, authorization, got)
    for method in ("PUT", "DELETE", "PATCH"):
        assert raw(app, method, "/v1/links/1")[0] == 401
    assert lab.get_json("/v1/links/1")["state"] == "up"          # nothing was failed
    assert raw(app, "GET", "/v1/links/1")[0] == 200              # reads stay open
    status, headers, view = raw(app, "POST", "/v1/links/1/fail", f"Bearer {token}")
    assert status == 200 and view["state"] == "failed"
    assert headers["X-Minet-Instance"] == "auth"                  # every answer names the instance


def test_a_controller_without_a_token_refuses_every_write(lab):
    lab.app.rest_token = None
    assert raw(make_app(lab.app), "POST", "/v1/links/1/fail", "Bearer " + "x" * 43)[0] == 403


def test_the_token_file_is_root_only_kept_and_replaced_when_unsafe(tmp_path):
    from minet_sdn.rest import auth
    d = tmp_path / "state"
    token = auth.ensure_token(str(d))
    path = d / auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
    assert auth.ensure_token(str(d)) == token                      # kept across restarts
    assert auth.read_token(str(path)) == token
    os.chmod(path, 0o644)                                          # readable by others: not trusted
    again = auth.ensure_token(str(d))
    assert again != token and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    os.chmod(path, 0o600)
    assert auth.ensure_token(str(d)) not in ("short", again)
    assert auth.read_token(str(tmp_path / "missing")) is None


def test_the_cli_sends_the_token_on_writes_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    token_file = tmp_path / "tok"
    token_file.write_text("k" * 40 + "\n")
    monkeypatch.setenv(TOKEN_ENV, str(token_file))
    rest = FakeRest(body=json.dumps(LINK).encode())
    try:
        assert main(["link", "fail", rest.topology(tmp_path), "1"]) == 0
        rest_list = FakeRest(body=json.dumps({"links": [LINK]}).encode())
        try:
            assert main(["link", "list", rest_list.topology(tmp_path)]) == 0
        finally:
            rest_list.close()
    finally:
        rest.close()
    (check, _, check_headers), (method, _, headers) = rest.requests      # who it is first, then the write
    assert check == "GET" and "Authorization" not in check_headers
    assert method == "POST" and headers["Authorization"] == "Bearer " + "k" * 40
    (method, _, headers), = rest_list.requests
    assert method == "GET" and "Authorization" not in headers      # reads never carry it


def test_a_refused_write_is_one_line_naming_the_token_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    monkeypatch.setenv(TOKEN_ENV, str(tmp_path / "unreadable"))
    rest = FakeRest(status=401, body=b'{"error": "send the token"}')
    try:
        assert main(["link", "fail", rest.topology(tmp_path), "1"]) == 2
    finally:
        rest.close()
    line = one_line(capsys.readouterr().err)
    assert "refused (401)" in line and str(tmp_path / "unreadable") in line, line


@pytest.mark.parametrize("instance", [None, "other"])
@pytest.mark.parametrize("verb", ["list", "fail"])
def test_another_instances_controller_is_refused_exit_2(tmp_path, monkeypatch, capsys, instance, verb):
    """Issue 21 item 10: another controller at the file's address (another instance, or something
    that does not say): one line, exit 2, and no 'failed' printed."""
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    rest = FakeRest(body=json.dumps(LINK if verb == "fail" else {"links": [LINK]}).encode(), instance=instance)
    try:
        argv = ["link", verb, rest.topology(tmp_path)] + (["1"] if verb == "fail" else [])
        assert main(argv) == 2
    finally:
        rest.close()
    out, err = capsys.readouterr()
    line = one_line(err)
    assert out == "" and "not the controller of" in line and f"127.0.0.1:{rest.port}" in line, line


def test_a_lab_whose_relay_is_dead_never_acts_on_another_controller(tmp_path, monkeypatch, capsys):
    """The lab's state exists but its relay does not run: before, the CLI fell back to the file's
    controller.rest silently and failed a link of whatever listened there. Now it says so, asks who
    answers there first, and refuses another instance's controller before sending the write."""
    from minet_sdn.lab.state import LabState, ProcessRecord, topology_digest
    from minet_sdn.topology import load_topology
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    rest = FakeRest(body=json.dumps(LINK).encode(), instance="other")
    try:
        topo_path = rest.topology(tmp_path)
        topo = load_topology(topo_path)
        os.makedirs(tmp_path / "labs" / topo.name)
        state = LabState(path=str(tmp_path / "labs" / topo.name / "lab.json"), name=topo.name, tag=topo.tag,
                         topology=topo_path, topology_sha256=topology_digest(topo_path))   # built from it
        state.add_process(ProcessRecord(name="relay", pid=2 ** 22 - 1, start=1))    # gone
        state.rest_relay = "http://127.0.0.1:1"
        state.save()
        assert main(["link", "fail", topo_path, "1"]) == 2
    finally:
        rest.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "relay is not running" in lines[0] and "not the controller of" in lines[1], lines
    assert [r[0] for r in rest.requests] == ["GET"]                # no write reached the other controller


def test_minet_ui_prints_the_login_url_only_to_who_reads_the_token(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    rest = FakeRest()
    try:
        topo = rest.topology(tmp_path)
        monkeypatch.setenv(TOKEN_ENV, str(tmp_path / "missing"))
        assert main(["ui", topo]) == 2
        assert "cannot read the controller's token" in one_line(capsys.readouterr().err)
        (tmp_path / "tok").write_text("z" * 40 + "\n")
        monkeypatch.setenv(TOKEN_ENV, str(tmp_path / "tok"))
        assert main(["ui", topo]) == 0
    finally:
        rest.close()
    assert capsys.readouterr().out.strip() == f"http://127.0.0.1:{rest.port}/ui#token={'z' * 40}"
