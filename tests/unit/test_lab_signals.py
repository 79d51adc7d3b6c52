"""SIGTERM and SIGHUP to `lab up` are Ctrl-C (lab/cli.py): the rollback of Lab.up runs, the exit is
128 + the signal, and the handlers the process had are back afterwards."""
import os
import signal
import time

import pytest

from minet_sdn.lab import cli


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_lab_up_is_an_interrupt_that_the_rollback_sees(monkeypatch, capsys, sig):
    seen = []

    def fake_up(args):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)
            return 0
        except KeyboardInterrupt:        # what Lab.up's `except BaseException` rollback catches
            seen.append("rolled back")
            os.kill(os.getpid(), sig)    # a second signal during the rollback is ignored
            time.sleep(0.1)
            raise
    monkeypatch.setattr(cli, "_cmd_up", fake_up)
    before = signal.getsignal(sig)
    assert cli.cmd_up(object()) == 128 + sig
    assert seen == ["rolled back"]
    assert f"stopped by {signal.Signals(sig).name}" in capsys.readouterr().err
    assert signal.getsignal(sig) == before
