"""minet-provision without root: bad input is one line per problem and exit 2 (no traceback),
--plan prints the plan, master mode refuses servers it cannot reach, SSH target parsing."""
import json
import time
import subprocess
import sys
from pathlib import Path

import pytest

from minet_sdn.cli.provision import main
from minet_sdn.provision import ssh
from minet_sdn.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = str(ROOT / "topologies" / "minimal.yaml")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minet_sdn.cli.provision", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_bad_topology_value_is_one_line_naming_file_key_value(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nservers:\n  VM1: {underlay_ip: 300.1.1.1}\nases:\n  1: {server: VM1, routers: [A]}\n")
    res = cli("--topology", str(bad), "--server", "VM1")
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("bad.yaml: servers.VM1.underlay_ip: '300.1.1.1' is not an IP")
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_missing_default_topology_file(tmp_path):
    res = cli("--server", "VM1", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "topology.yaml: cannot read: No such file or directory"


def test_addressing_problem_is_bad_input(tmp_path):
    bad = tmp_path / "big.yaml"
    bad.write_text("name: t\nservers:\n  VM1: {underlay_ip: 192.0.2.1}\nases:\n  70000: {server: VM1, routers: [A]}\n")
    res = cli("--topology", str(bad), "--server", "VM1")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["big.yaml: ases.70000.prefix: is required for AS numbers above 65535",
                                               "big.yaml: ases.70000.prefix6: is required for AS numbers above 65535"]


def test_unknown_server(capsys):
    assert main(["--topology", MINIMAL, "--server", "VM7"]) == 2
    assert capsys.readouterr().err.strip() == "minimal.yaml: --server VM7: not a server of this topology (VM1, VM2)"


def test_neither_server_nor_master(capsys):
    assert main(["--topology", MINIMAL]) == 2
    assert "--server" in capsys.readouterr().err


def test_plan_is_printed_as_json_without_changing_anything(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_STATE_DIR", str(tmp_path / "state"))
    assert main(["--topology", MINIMAL, "--server", "VM2", "--plan", "--datapath", "netdev"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["server"] == "VM2" and doc["datapath"] == "netdev"
    assert [n["id"] for n in doc["nodes"]][:2] == ["2.PARI", "2.PARI.host"]
    assert doc["bridges"][0]["ports"][0]["ofport"] == 1
    assert not (tmp_path / "state").exists()


def test_master_refuses_servers_without_ssh(tmp_path, capsys):
    topo = tmp_path / "t.yaml"
    topo.write_text(Path(MINIMAL).read_text())
    assert main(["--topology", str(topo), "--master"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["t.yaml: servers.VM1.ssh: missing; master mode reaches every server over SSH "
                   "(or name this one with --local-server VM1)"]
    assert main(["--topology", str(topo), "--master", "--local-server", "VM3"]) == 2
    assert "--local-server VM3: not a server" in capsys.readouterr().err


def test_master_targets_accept_a_local_server():
    topo = load_topology(MINIMAL)
    assert ssh.master_targets(topo, "VM1") == []


@pytest.mark.parametrize("spec, want", [
    ("host", (None, "host", 22)),
    ("root@vm2.example.org:2222", ("root", "vm2.example.org", 2222)),
    ("admin@[2001:db8::1]:22", ("admin", "2001:db8::1", 22)),
    ("10.0.0.1", (None, "10.0.0.1", 22)),
])
def test_parse_ssh(spec, want):
    assert ssh.parse_ssh(spec) == want


def test_remote_command_is_quoted():
    cmd = ssh._remote_argv("'/opt/my env/minet-provision'", "/tmp/minet-topology.ab", "VM1", True, [])
    assert cmd == "'/opt/my env/minet-provision' --topology /tmp/minet-topology.ab --server VM1 --json --down"
    cmd = ssh._remote_argv("minet-provision", "/tmp/t y.yaml", "VM1", False, ["--backend", "docker"])
    assert cmd == "minet-provision --topology '/tmp/t y.yaml' --server VM1 --json --backend docker"


def test_report_parsing_takes_the_last_json_line():
    out = 'noise\n{"ok": true, "n_changes": 3}\n'
    result = ssh._finish(ssh.ServerResult(server="VM1", ok=False, via="x"), 0, out, [])
    assert result.ok and result.report["n_changes"] == 3
    failed = ssh._finish(ssh.ServerResult(server="VM1", ok=False, via="x"), 1,
                         '{"ok": false, "error": "zebra did not start"}', ["error: VM1: zebra did not start"])
    assert not failed.ok and failed.error == "zebra did not start"
    crashed = ssh._finish(ssh.ServerResult(server="VM1", ok=False, via="x"), 127, "", ["sh: minet-provision: not found"])
    assert not crashed.ok and crashed.error == "sh: minet-provision: not found"


class _ScriptedChannel:
    """A paramiko channel stand-in: writes stderr lines at given offsets (seconds from the start),
    then exits; select() waits on a socket that never becomes readable."""

    def __init__(self, script, exit_at):
        import socket
        self._a, self._b = socket.socketpair()
        self._t0 = None
        self._script = list(script)
        self._exit_at = exit_at
        self.closed = False

    def _now(self):
        return time.monotonic() - self._t0

    def settimeout(self, _t):
        pass

    def exec_command(self, _cmd):
        self._t0 = time.monotonic()

    def fileno(self):
        return self._a.fileno()

    def recv_ready(self):
        return False

    def recv_stderr_ready(self):
        return bool(self._script) and self._script[0][0] <= self._now()

    def recv_stderr(self, _n):
        return (self._script.pop(0)[1] + "\n").encode()

    def exit_status_ready(self):
        return not self._script and self._now() >= self._exit_at

    def recv_exit_status(self):
        return 0

    def close(self):
        self.closed = True
        self._a.close()
        self._b.close()


class _Client:
    def __init__(self, chan):
        self.chan = chan

    def get_transport(self):
        return self

    def open_session(self):
        return self.chan


def test_master_command_limit_is_on_silence_not_on_the_whole_run():
    # progress every 0.3 s for 2.4 s: twice the 1.2 s limit, never silent that long (wide margins,
    # so a loaded machine that runs the loop late does not fail it)
    chan = _ScriptedChannel([(0.3 * i, f"FRR: {i}/8 routers started") for i in range(1, 9)], exit_at=2.5)
    seen = []
    code, _out, err = ssh._exec(_Client(chan), "minet-provision --server VM1", 1.2, on_stderr_line=seen.append)
    assert code == 0 and len(seen) == 8 and "8/8" in err


def test_master_command_gives_up_after_silence():
    chan = _ScriptedChannel([(0.1, "FRR: 1/6 routers started")], exit_at=60)
    with pytest.raises(TimeoutError, match="said nothing for 0.5 s"):
        ssh._exec(_Client(chan), "minet-provision --server VM1", 0.5)
    assert chan.closed
