"""An interrupt of master mode is forwarded to every server's provisioner, and the master waits for
their rollback (provision/ssh.py); a rollback is not cut short by a second interrupt (journal.py).
No root, no SSH: the per-server work is replaced by fakes that behave like a remote provisioner."""
import os
import signal
import threading
import time

import pytest

from minet_sdn.provision import ssh
from minet_sdn.provision.journal import Journal
from minet_sdn.topology import parse_topology

TOPO = """
name: intr
servers:
  VM1: {underlay_ip: 192.0.2.1, ssh: root@192.0.2.1}
  VM2: {underlay_ip: 192.0.2.2, ssh: root@192.0.2.2}
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
"""


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt here whatever a test before in the same process left
    installed (in the whole suite one did, and the interrupt never reached the master)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _interrupt_soon(sig=signal.SIGINT, after=0.3):
    timer = threading.Timer(after, os.kill, args=(os.getpid(), sig))
    timer.start()
    return timer


def test_an_interrupted_master_stops_every_server_and_waits_for_each(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text(TOPO)
    topo = parse_topology(TOPO)
    told, finished = [], []

    def fake(server, text, down, opts, progress, extra=None, stop=None):
        assert stop is not None                      # the master hands each server the stop signal
        stop.wait(30)                                # a provisioner starting routers until told
        told.append(server.name)
        time.sleep(0.5 if server.name == "VM1" else 0.1)      # its rollback
        finished.append(server.name)
        return ssh.ServerResult(server=server.name, ok=False, via="fake", error="interrupted")

    monkeypatch.setattr(ssh, "provision_over_ssh", fake)
    lines = []
    _interrupt_soon()
    with pytest.raises(ssh.Interrupted) as exc:
        ssh.run_master(topo, str(path), False, ssh.SshOptions(), lines.append)
    assert sorted(told) == ["VM1", "VM2"] and sorted(finished) == ["VM1", "VM2"]   # both rolled back first
    assert [r.server for r in exc.value.results] == ["VM1", "VM2"]
    assert any("waiting for their rollback" in line for line in lines)


def test_a_second_interrupt_does_not_cut_the_masters_wait_short(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text(TOPO)
    topo = parse_topology(TOPO)
    finished = []

    def fake(server, text, down, opts, progress, extra=None, stop=None):
        stop.wait(30)
        os.kill(os.getpid(), signal.SIGINT)          # pressed again during the rollback
        time.sleep(0.3)
        finished.append(server.name)
        return ssh.ServerResult(server=server.name, ok=False, via="fake")

    monkeypatch.setattr(ssh, "provision_over_ssh", fake)
    _interrupt_soon()
    with pytest.raises(ssh.Interrupted):
        ssh.run_master(topo, str(path), False, ssh.SshOptions(), lambda m: None)
    assert sorted(finished) == ["VM1", "VM2"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler    # restored after


class _Undoing(Journal):
    def __init__(self):
        self.plan = type("P", (), {"server": "VM1"})()
        self._progress = lambda m: None
        self._t0 = time.monotonic()
        self.changes, self._undo, self.undone = [], [], []


def test_a_rollback_is_not_cut_short_by_an_interrupt():
    """SIGTERM (as `minet-provision` handles it: KeyboardInterrupt) arriving during a rollback: every
    undo still runs, and the handler is back afterwards."""
    def as_interrupt(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, as_interrupt)
    try:
        j = _Undoing()
        for i in range(3):
            j._created(f"thing {i}", lambda i=i: j.undone.append(i))
        j._undo.insert(1, ("signal", lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.05))))
        done = j._rollback()
        assert j.undone == [2, 1, 0] and len(done) == 4
        assert signal.getsignal(signal.SIGTERM) is as_interrupt
    finally:
        signal.signal(signal.SIGTERM, before)


FAKE_MASTER = r"""
import signal, sys, time
def stop(signum, frame):
    print("rolling back", flush=True)
    time.sleep(0.5)
    print("rolled back", flush=True)
    sys.exit(130)
signal.signal(signal.SIGTERM, stop)
print("started", flush=True)
time.sleep(30)
print("finished up", flush=True)
"""


def test_lab_up_interrupted_while_provisioning_waits_for_the_masters_rollback(tmp_path, monkeypatch):
    """`lab up` interrupted (SIGTERM reaches only the lab): the master gets SIGTERM and the lab waits
    for it to exit before going on (to its own --down) - it reads the master's rollback to the end."""
    from types import SimpleNamespace

    from minet_sdn.lab import provisioning
    script = tmp_path / "master.py"
    script.write_text(FAKE_MASTER)
    import sys
    monkeypatch.setattr(provisioning, "console_argv", lambda name, module: [sys.executable, str(script)])
    monkeypatch.setattr(provisioning, "nsenter_argv", lambda ns, argv: list(argv))
    monkeypatch.setattr(provisioning.paths, "state_file", lambda topo, name: str(tmp_path / name))
    monkeypatch.setattr(provisioning.paths, "state_dir", lambda topo: str(tmp_path))
    monkeypatch.setattr(provisioning.names, "mgmt_ns", lambda topo: "mgmt")
    state = SimpleNamespace(effective_topology="t.yaml", ssh=SimpleNamespace(known_hosts="k", key="i"),
                            backend="netns", image=None)
    lines = []

    def progress(line):
        lines.append(line)
        if line.endswith("started"):
            os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C / the lab's SIGTERM handler: an interrupt

    with pytest.raises(KeyboardInterrupt):
        provisioning.run_provision(object(), state, progress)
    text = "\n".join(lines)
    assert "rolled back" in text and "finished up" not in text, text
    assert "waiting for every server's rollback" in text
