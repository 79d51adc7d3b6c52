"""What every end-to-end test module needs: skip cleanly where the lab cannot run, and write a
copy of topologies/demo.yaml under a unique instance name (so a lab the user has up is never
touched, and the short name is its own tag); wait until every item of a set holds (polling with
tests/polling.py), fail a link for a while, and watch packets on an interface."""
from __future__ import annotations

import contextlib
import os
import shutil
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, TypeVar

import pytest

from minet_sdn.lab import convergence, observe, quiet, sshd
from minet_sdn.lab.lab import Lab
from tests.polling import wait_until

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "demo.yaml")
LAB_TOOLS = ("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ip", "nsenter", "ethtool", "ssh-keygen")
HOST_FRR = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd")
T = TypeVar("T")


def require_lab(*tools: str, host_frr: bool = True) -> None:
    """Skip the calling module unless root and everything an embedded lab needs is here.
    `host_frr=False` for labs whose routers run FRR from a container image."""
    if os.geteuid() != 0:
        pytest.skip("needs root", allow_module_level=True)
    for tool in LAB_TOOLS + tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed", allow_module_level=True)
    for path in (sshd.SSHD,) + (HOST_FRR if host_frr else ()):
        if not os.path.exists(path):
            pytest.skip(f"{path} is not installed", allow_module_level=True)
    # the project's own modules are imported, never skipped: a broken install fails the tests
    import minet_sdn.apps.remote_links  # noqa: F401
    import minet_sdn.cli.provision  # noqa: F401


@contextlib.contextmanager
def imported_lab(folder: str, directory, prefix: str, servers: int = 2) -> Iterator[Tuple[str, dict]]:
    """A mini-Internet folder imported onto `servers` servers under a unique name `<prefix><4 hex>`,
    validated and brought up: (topology path, lab_up's summary); removed afterwards, also when `up`
    or the test failed."""
    import secrets
    from minet_sdn.cli.main import main
    path = os.path.join(str(directory), f"{prefix}.yaml")
    name = f"{prefix}{secrets.token_hex(2)}"
    assert main(["import", "mini-internet", str(folder), "--servers", str(servers), "--name", name, "-o", path]) == 0
    assert main(["validate", path]) == 0
    try:
        yield path, Lab(path, progress=lambda m: print(m, flush=True)).up()
    finally:
        Lab(path, progress=quiet).remove()


def live_processes(match: Callable[[str], bool]) -> List[str]:
    """Command lines (arguments joined by spaces) of the live processes `match` accepts; zombies
    are left out (PID 1 here reaps none: a stopped daemon may stay <defunct>)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and match(cmd):
            found.append(cmd)
    return found


def lab_namespaces(topo) -> List[str]:
    """The network namespaces of the lab of `topo` (its tag prefixes every one)."""
    import subprocess
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{topo.tag}-")]


def demo_variant(directory, prefix: str, filename: str,
                 change: Optional[Callable[[dict], None]] = None) -> str:
    """demo.yaml named `<prefix><4 hex>`, edited by `change`, written to `directory/filename`."""
    return observe.write_variant(DEMO, str(directory), prefix, filename=filename, change=change)


def isolation(mode: str) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data.setdefault("fabric", {})["isolation"] = mode
    return change


def wait_all(items: Iterable[T], ok: Callable[[T], bool], timeout: float, what: str,
             interval: float = 1.0) -> None:
    """wait_until ok(item) holds for every item; an item found ok is not asked again (a ping per
    host pair that still fails, not one per pair every round)."""
    pending = list(items)

    def done() -> bool:
        pending[:] = [i for i in pending if not ok(i)]
        return not pending
    assert wait_until(done, timeout, interval=interval), \
        f"timed out after {timeout:g} s waiting for {what} ({len(pending)} not yet, e.g. {pending[:4]})"


@contextlib.contextmanager
def link_failed(path: str, link_id: int) -> Iterator[None]:
    """Link `link_id` of the lab of `path` failed through the controller's REST API for the body of
    the `with`, and restored afterwards whatever happens there."""
    lab = Lab(path, progress=quiet)
    code, body = lab.rest_call("POST", f"/v1/links/{link_id}/fail")
    assert code == 200, body
    try:
        yield
    finally:
        code, body = lab.rest_call("POST", f"/v1/links/{link_id}/restore")
        assert code == 200, body


def session_drops_on_failed_link(path: str, topo, link_id: int, session_state: Callable[[], str]) -> None:
    """Fail link `link_id` through REST: `session_state()` (a BGP session over it) leaves
    Established within 10 s; once the link is restored, every session is up again within 60 s."""
    with link_failed(path, link_id):
        wait_until(lambda: session_state() != "Established", 10, interval=0.2,
                   what=f"the BGP session over link {link_id} to drop")
    ok, reports = Lab(path, progress=quiet).wait_bgp(timeout=60)
    assert ok, [r["router"] for r in reports if not convergence.bgp_converged(r)]


def traceroute_hops(out: str) -> List[Optional[str]]:
    """The hop addresses of `traceroute -n -q 1` output, None where a hop did not answer."""
    hops: List[Optional[str]] = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0].isdigit():
            hops.append(parts[1] if len(parts) > 1 and parts[1] != "*" else None)
    return hops


def capture(ns: str, ifname: str, bpf: str, verbose: bool = False, ethernet: bool = True):
    """Start tcpdump on `ifname` in namespace `ns` (returns once it listens); stop_capture() ends it
    and returns what it printed. `ethernet`: print link-level headers (-e)."""
    import subprocess
    import tempfile
    log = tempfile.NamedTemporaryFile("w+", suffix=".tcpdump")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-n"] + (["-e"] if ethernet else []) + ["-p", "-l"] + (["-vv"] if verbose else [])
                            + ["-i", ifname, bpf], stdout=log, stderr=subprocess.PIPE, text=True)
    seen = []
    while True:                                      # "listening on ..." (or an error) on stderr
        line = proc.stderr.readline()
        seen.append(line)
        if "listening on" in line or not line:
            break
    if "listening on" not in line:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"tcpdump on {ns}/{ifname}: {''.join(seen)}")
    return proc, log


def captured(handle) -> str:
    """What a running capture has printed so far (tcpdump -l writes line by line)."""
    with open(handle[1].name) as fh:
        return fh.read()


def stop_capture(handle) -> str:
    proc, log = handle
    proc.terminate()
    proc.wait(10)
    log.seek(0)
    text = log.read()
    log.close()
    return text.strip()
