"""minet_sdn/host.py: stopping processes, file locks, entering a namespace."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from minet_sdn import host


def _child(ignore_term: bool) -> subprocess.Popen:
    code = ("import signal, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "print('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_stop_processes_terms_then_kills_and_reaps(monkeypatch):
    polite, stubborn = _child(False), _child(True)
    sent = []
    kill = os.kill

    def recording_kill(pid, sig):
        sent.append((pid, sig))
        kill(pid, sig)
    monkeypatch.setattr(host.os, "kill", recording_kill)
    left = host.stop_processes([polite.pid, stubborn.pid], timeout=0.5, kill_wait=5)
    assert left == []
    # both got SIGTERM; only the one that ignores it was killed, once the grace had passed
    assert sent == [(polite.pid, signal.SIGTERM), (stubborn.pid, signal.SIGTERM), (stubborn.pid, signal.SIGKILL)]
    assert not host.pid_alive(polite.pid) and not host.pid_alive(stubborn.pid)
    assert not os.path.exists(f"/proc/{stubborn.pid}")   # reaped: no zombie left


def test_pid_alive_and_starttime():
    assert host.pid_alive(os.getpid()) and host.proc_starttime(os.getpid()) > 0
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not host.pid_alive(proc.pid) and host.proc_starttime(proc.pid) is None


def test_file_lock_is_exclusive(tmp_path):
    path = str(tmp_path / "x.lock")
    with host.file_lock(path, blocking=False):
        with pytest.raises(host.Busy):
            with host.file_lock(path, blocking=False):
                pass
    with host.file_lock(path, blocking=False):      # released
        pass
    with host.file_lock(str(tmp_path / "d"), directory=True):
        with pytest.raises(host.Busy):
            with host.file_lock(str(tmp_path / "d"), directory=True, blocking=False):
                pass


def test_read_pidfile(tmp_path):
    p = tmp_path / "x.pid"
    p.write_text(f"{os.getpid()}\n")
    assert host.read_pidfile(str(p), timeout=0.1) == os.getpid()
    assert host.read_pidfile(str(tmp_path / "none.pid"), timeout=0.1) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="setns needs CAP_SYS_ADMIN")
def test_in_netns_own_namespace_and_errors():
    sock = host.in_netns(f"/proc/{os.getpid()}/ns/net", lambda: socket.socket())
    sock.close()
    with pytest.raises(OSError):
        host.in_netns("/nonexistent-netns-file", lambda: None)
    with pytest.raises(ZeroDivisionError):
        host.in_netns(f"/proc/{os.getpid()}/ns/net", lambda: 1 / 0)


# ---- page merging (KSM) -------------------------------------------------------------------------

def _ksm_dir(tmp_path, run="0", pages="100"):
    d = tmp_path / "ksm"
    d.mkdir()
    (d / "run").write_text(run + "\n")
    (d / "pages_to_scan").write_text(pages + "\n")
    return d


class _Prctl:
    def __init__(self, rc=0, err=0):
        self.calls, self.rc, self.err = [], rc, err

    def __call__(self, option, arg):
        self.calls.append((option, arg))
        return (self.rc, self.err) if arg else (0, 0)


def test_page_merging_opts_in_turns_ksm_on_and_raises_the_scan_rate(tmp_path):
    d, prctl = _ksm_dir(tmp_path), _Prctl()
    m = host.page_merging(1000, str(d), prctl)
    assert m.on and m.why_not is None
    assert prctl.calls == [(host.PR_SET_MEMORY_MERGE, 1)]
    assert (d / "run").read_text() == "1" and (d / "pages_to_scan").read_text() == "1000"
    assert len(m.changes) == 2 and "run = 1" in m.changes[0] and "(was 100)" in m.changes[1]
    again = host.page_merging(1000, str(d), _Prctl())         # nothing left to change
    assert again.on and again.changes == ()


def test_page_merging_never_lowers_the_scan_rate(tmp_path):
    d = _ksm_dir(tmp_path, run="1", pages="5000")
    m = host.page_merging(1000, str(d), _Prctl())
    assert m.on and m.changes == () and (d / "pages_to_scan").read_text().strip() == "5000"


def test_page_merging_says_why_not_and_changes_nothing(tmp_path):
    m = host.page_merging(1000, str(tmp_path / "absent"), _Prctl())
    assert not m.on and "no KSM" in m.why_not
    stopped = _ksm_dir(tmp_path, run="2")
    prctl = _Prctl()
    m = host.page_merging(1000, str(stopped), prctl)
    assert not m.on and "run is 2" in m.why_not and prctl.calls == []
    assert (stopped / "run").read_text().strip() == "2"


def test_page_merging_on_an_old_kernel(tmp_path):
    import errno
    d = _ksm_dir(tmp_path)
    m = host.page_merging(1000, str(d), _Prctl(rc=-1, err=errno.EINVAL))
    assert not m.on and "6.4" in m.why_not
    assert (d / "run").read_text().strip() == "0"            # nothing turned on for nothing


def test_page_merging_unavailable_reads_only(tmp_path):
    import errno
    d = _ksm_dir(tmp_path)
    assert host.page_merging_unavailable(str(d), _Prctl()) is None
    assert (d / "run").read_text().strip() == "0"           # asking changes nothing
    assert "6.4" in host.page_merging_unavailable(str(d), lambda o, a: (-1, errno.EINVAL))
    assert "no KSM" in host.page_merging_unavailable(str(tmp_path / "none"), _Prctl())


# ---- the scan rate goes back once merging settled ---------------------------------------------

def test_page_merging_records_the_rate_it_raised(tmp_path):
    d = _ksm_dir(tmp_path, run="1", pages="100")
    m = host.page_merging(1000, str(d), _Prctl())
    assert m.on and "back once merged" in m.changes[0]
    assert (d / "rate").read_text().split() == ["100", "1000"]
    (d / "pages_to_scan").write_text("1000")
    host.page_merging(2000, str(d), _Prctl())                   # a later raise keeps the first "before"
    assert (d / "rate").read_text().split() == ["100", "2000"]


def test_merging_settled_needs_a_whole_pass_that_merged_little():
    assert not host.merging_settled((5, 10_000), (5, 10_050))       # no pass ended
    assert not host.merging_settled((5, 10_000), (6, 12_000))       # a pass merged 17 % more
    assert host.merging_settled((5, 10_000), (6, 10_050))           # under 1 %
    assert not host.merging_settled((5, 0), (6, 300))                # merging has just begun
    assert host.merging_settled((5, 0), (6, 0))                      # nothing to merge (FRR gone)


def _counters(d, scans, sharing):
    (d / "full_scans").write_text(f"{scans}\n")
    (d / "pages_sharing").write_text(f"{sharing}\n")


def test_calm_when_merged_puts_the_rate_back_once_a_pass_merges_little(tmp_path):
    d = _ksm_dir(tmp_path, run="1", pages="100")
    host.page_merging(1000, str(d), _Prctl())
    # ksmd's counters as the waiter sees them, one reading per poll: start-up merging, then settled
    seq = iter([(0, 0), (1, 50_000), (1, 80_000), (2, 200_000), (3, 260_000), (4, 261_000)])
    _counters(d, *next(seq))
    rates = []

    def sleep(_):
        rates.append((d / "pages_to_scan").read_text().strip())
        _counters(d, *next(seq))

    t = iter(range(1000))
    done = host.calm_when_merged(str(d), timeout=100, poll=1, sleep=sleep, clock=lambda: next(t))
    assert done and "= 100" in done
    assert set(rates) == {"1000"}                   # fast all the while merging went on
    assert (d / "pages_to_scan").read_text().strip() == "100"
    assert not (d / "rate").exists()


def test_calm_waits_for_every_start_up_and_leaves_a_rate_that_is_not_ours(tmp_path):
    d = _ksm_dir(tmp_path, run="1", pages="100")
    host.page_merging(1000, str(d), _Prctl())
    with host.ksm_starting(str(d)):                     # a provisioner is starting FRR: not now
        assert host.calm_page_merging(str(d)) is None
        assert (d / "pages_to_scan").read_text().strip() == "1000" and (d / "rate").exists()
    assert "= 100" in host.calm_page_merging(str(d))
    assert (d / "pages_to_scan").read_text().strip() == "100"
    # someone set their own rate after ours: left alone, our record dropped
    host.page_merging(1000, str(d), _Prctl())
    (d / "pages_to_scan").write_text("4000")
    assert host.calm_page_merging(str(d)) is None
    assert (d / "pages_to_scan").read_text().strip() == "4000" and not (d / "rate").exists()


def test_only_one_waiter_per_machine(tmp_path):
    d = _ksm_dir(tmp_path, run="1", pages="100")
    host.page_merging(1000, str(d), _Prctl())
    with host.file_lock(str(d / "calm.lock")):
        assert host.calm_when_merged(str(d), timeout=5, poll=1, sleep=lambda _: None) is None
    assert (d / "pages_to_scan").read_text().strip() == "1000"
