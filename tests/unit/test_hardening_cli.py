"""Issue 12, the command line: ids and ports, output to a closed pipe or a full disk, a REST port
that answers something else, a lab state of the wrong shape, and `minet controller`'s options.
Every error is one line on stderr with the documented exit code, never a traceback."""
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from minet_sdn.cli.main import main

from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "topologies" / "demo.yaml")
LINK = {"id": 1, "a": {"router": "1.ZURI", "server": "VM1", "ip": "x", "ip6": "x", "mac": "x"},
        "b": {"router": "2.PARI", "server": "VM2", "ip": "x", "ip6": "x", "mac": "x"}, "rel": "peer",
        "remote": True, "state": "up", "tunnel_live": True, "counters": {"VM1": {"packets": 1, "bytes": 2},
                                                                           "VM2": None}}


def run(*argv, env=None, stdout=subprocess.PIPE, timeout=60):
    proc = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", *argv], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, cwd=str(REPO),
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- ids and ports ----------------------------------------------------------------------------

@pytest.mark.parametrize("link_id", ["²", "١", "１", "9" * 5000, "0", "-1", "1.0", " 1"])
def test_link_ids_are_ascii_digits(link_id, capsys):
    assert main(["link", "fail", DEMO, link_id]) == 2
    assert "is not a link id" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("option, value, why", [
    ("--rest", "127.0.0.1:²", "is not HOST:PORT"),
    ("--rest", "127.0.0.1:١", "is not HOST:PORT"),
    ("--ofp", "127.0.0.1:" + "9" * 5000, "is not HOST:PORT"),
    ("--rest", "0.0.0.0:8080", "wildcard"),
    ("--ofp", "[::]:6653", "wildcard"),
    ("--rest", "localhost:8080", "not an IP address"),
    ("--rest", "127.0.0.1:70000", "not in 1..65535"),
])
def test_controller_listeners_follow_the_topology_files_rules(option, value, why, capsys):
    assert main(["controller", "--topology", DEMO, option, value]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"minet controller: {option}: ") and why in line, line


def test_controller_refuses_one_port_for_both_listeners_and_a_log_file_it_cannot_write(capsys, tmp_path):
    port = free_port()
    assert main(["controller", "--topology", DEMO, "--ofp", f"127.0.0.1:{port}", "--rest", f"127.0.0.1:{port}"]) == 2
    assert "cannot both listen on 127.0.0.1:" in one_line(capsys.readouterr().err)
    assert main(["controller", "--topology", DEMO, "--ofp", f"127.0.0.1:{free_port()}", "--rest",
                 f"127.0.0.1:{free_port()}", "--log-file", str(tmp_path / "missing" / "c.log")]) == 2
    assert "--log-file" in one_line(capsys.readouterr().err)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_controller_ctrl_c_exits_cleanly(tmp_path):
    rest = free_port()
    argv = [sys.executable, "-m", "minet_sdn.cli.main", "controller", "--topology", DEMO,
            "--ofp", f"127.0.0.1:{free_port()}", "--rest", f"127.0.0.1:{rest}",
            "--state", str(tmp_path / "state.json"), "--log-file", str(tmp_path / "c.log")]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Ctrl-C on a running controller: its apps are up once its REST API answers
        # (a loaded machine starts it slowly: a signal sent before the apps run would test nothing)
        wait_until(lambda: proc.poll() is not None or _answers(f"http://127.0.0.1:{rest}/healthz"), 120,
                   what="the controller's REST API")
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # before: two tracebacks and exit 1
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "minet controller: stopped: interrupted"


# ---- output to a closed pipe or a full disk ---------------------------------------------------------

class FakeRest:
    """An HTTP server on loopback answering every request with (status, content type, body)."""

    def __init__(self, status=200, ctype="application/json", body=b"", instance=""):
        """`instance`: the X-Minet-Instance it answers with ("": the topology's, None: none)."""
        answer = (status, ctype, body)
        rest = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self):
                rest.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(answer[0])
                self.send_header("Content-Type", answer[1])
                self.send_header("Content-Length", str(len(answer[2])))
                if instance is not None:
                    self.send_header("X-Minet-Instance", instance or f"t{rest.port}")
                self.end_headers()
                self.wfile.write(answer[2])

            do_GET = do_POST = _reply

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def topology(self, tmp_path: Path) -> str:
        path = tmp_path / "rest.yaml"
        path.write_text(Path(DEMO).read_text().replace("name: demo", f"name: t{self.port}\ncontroller: "
                                                       f"{{rest: '127.0.0.1:{self.port}'}}"))
        return str(path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def good_rest():
    rest = FakeRest(body=json.dumps({"links": [LINK] * 50}).encode())
    yield rest
    rest.close()


def closed_pipe():
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("argv", [["link", "list", "{topo}"], ["link", "list", "{topo}", "--json"],
                                  ["validate", "{topo}"]])
def test_a_closed_pipe_ends_the_output_quietly(good_rest, tmp_path, argv):
    topo = good_rest.topology(tmp_path)
    w = closed_pipe()
    try:
        code, _, err = run(*[a.format(topo=topo) for a in argv], stdout=w,
                           env={"MINET_LAB_ROOT": str(tmp_path / "labs")})
    finally:
        os.close(w)
    assert err == "" and code == 141, (code, err)     # before: a BrokenPipeError traceback


def test_a_full_disk_is_one_line(good_rest, tmp_path):
    with open("/dev/full", "w") as full:
        code, _, err = run("link", "list", good_rest.topology(tmp_path), stdout=full,
                           env={"MINET_LAB_ROOT": str(tmp_path / "labs")})
    assert code == 1 and one_line(err) == "minet: cannot write the output: No space left on device"


# ---- a REST port that is not our API ----------------------------------------------------------------

@pytest.mark.parametrize("ctype, body, what", [
    ("text/html", b"<html><body>It works!</body></html>", "text/html"),
    ("application/json", b"[]", "JSON []"),
    ("application/json", b"null", "JSON null"),
    ("application/json", b"{\"links\": [", "bad JSON"),
    ("application/json", b"\xff\xfe\x00", "not UTF-8"),
    ("application/json", json.dumps({"links": [{"id": "1"}]}).encode(), "not the controller's"),
    ("application/json", json.dumps({"links": [dict(LINK, counters={"VM1": 5})]}).encode(), "JSON"),
])
@pytest.mark.parametrize("verb", ["list", "fail"])
def test_an_answer_that_is_not_our_api_is_one_line_naming_the_url(tmp_path, monkeypatch, capsys, ctype, body,
                                                                 what, verb):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    rest = FakeRest(ctype=ctype, body=body)
    try:
        argv = ["link", verb, rest.topology(tmp_path)] + (["1"] if verb == "fail" else [])
        with pytest.raises(SystemExit) as exc:
            main(argv)
    finally:
        rest.close()
    assert exc.value.code == 1
    line = one_line(capsys.readouterr().err)
    assert f"http://127.0.0.1:{rest.port}/v1/links" in line and what in line, line


def test_an_error_status_with_html_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    rest = FakeRest(status=404, ctype="text/html", body=b"<html>\n<h1>Not Found</h1>\n</html>\n")
    try:
        with pytest.raises(SystemExit) as exc:
            main(["link", "fail", rest.topology(tmp_path), "1"])
    finally:
        rest.close()
    assert exc.value.code == 1 and "answered 404" in one_line(capsys.readouterr().err)


# ---- a lab state file of the wrong shape -------------------------------------------------------------

@pytest.mark.parametrize("content", ["[]", "null", '{"processes": 5}', '{"processes": [{"name": 1}]}',
                                     '{"servers": []}', '{"mgmt": "x"}', '{"namespaces": [1]}'])
@pytest.mark.parametrize("argv", [["lab", "status", DEMO], ["link", "list", DEMO], ["exec", DEMO, "1.ZURI", "--", "true"]])
def test_a_lab_state_of_the_wrong_shape_is_unreadable_exit_2(tmp_path, monkeypatch, capsys, content, argv):
    root = tmp_path / "labs"
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "lab.json").write_text(content)
    monkeypatch.setenv("MINET_LAB_ROOT", str(root))
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert f"unreadable lab state {root / 'demo' / 'lab.json'}: " in line, line


@pytest.mark.parametrize("module,argv", [
    ("minet_sdn.cli.provision", ["--topology", "topologies/demo.yaml", "--server", "VM1", "--plan"]),
    ("minet_sdn.cli.main", ["generate", "class", "--ases", "10", "--servers", "2"]),
    ("minet_sdn.lab", ["lab", "status", "topologies/demo.yaml", "--json"]),
])
def test_every_command_ends_quietly_on_a_closed_pipe(tmp_path, module, argv):
    w = closed_pipe()
    try:
        proc = subprocess.run([sys.executable, "-m", module, *argv], stdout=w, stderr=subprocess.PIPE, text=True,
                              timeout=60, cwd=str(REPO), env={**os.environ, "MINET_LAB_ROOT": str(tmp_path)})
    finally:
        os.close(w)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    if module != "minet_sdn.lab":          # no lab is up: one line on stderr, nothing written
        assert proc.returncode == 141 and proc.stderr == "", (proc.returncode, proc.stderr)
