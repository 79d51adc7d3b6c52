"""A docker engine for the docker-backend tests (root only).

`docker_engine()` is a context manager: when an engine already answers on /var/run/docker.sock it
is used as it is (and left running); otherwise docker.io is installed if missing (apt-get, as
scripts/setup.sh does) and `dockerd` is started in the background with its own pidfile and log in
a temp dir and with `--iptables=false --ip-masq=false --bridge=none`, so it does not touch the
host's network. On exit, `docker ps -a` is listed (and printed), the containers the tests made
(label org.minet-sdn.instance starting with one of `prefixes`) are removed, and a dockerd started
here is stopped by its pid. The image (minet-sdn/frr:<version>) is kept: it is the build cache.

Raises `EngineUnavailable(reason)` when docker cannot be installed or started: tests skip with it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence

from minet_sdn import host

from tests.polling import wait_until

SOCKET = "/var/run/docker.sock"
START_TIMEOUT = 60.0


class EngineUnavailable(Exception):
    pass


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def answers() -> bool:
    if shutil.which("docker") is None or not os.path.exists(SOCKET):
        return False
    try:
        return _run("docker", "version", "--format", "{{.Server.Version}}", timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _install() -> None:
    if shutil.which("dockerd") and shutil.which("docker"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise EngineUnavailable("docker.io is not installed (and cannot be installed here)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    res = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
                         capture_output=True, text=True, timeout=600, env=env)
    if res.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, env=env)
        res = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
                             capture_output=True, text=True, timeout=600, env=env)
    if res.returncode != 0 or not shutil.which("dockerd"):
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
        raise EngineUnavailable(f"docker.io could not be installed: {tail[0]}")


def list_all() -> str:
    res = _run("docker", "ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.Labels}}")
    return res.stdout


def remove_containers(prefixes: Sequence[str]) -> List[str]:
    """Remove every container whose org.minet-sdn.instance label starts with one of `prefixes`."""
    res = _run("docker", "ps", "-a", "--no-trunc", "--filter", "label=org.minet-sdn.instance",
               "--format", '{{.ID}} {{.Names}} {{.Label "org.minet-sdn.instance"}}')
    gone = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and any(parts[2].startswith(p) for p in prefixes):
            _run("docker", "rm", "--force", "--volumes", parts[0], timeout=120)
            gone.append(parts[1])
    return gone


class Engine:
    def __init__(self) -> None:
        self.pid: Optional[int] = None
        self.dir: Optional[str] = None
        self.prefixes: List[str] = []     # tests add the instance-name prefixes they use

    @property
    def started_here(self) -> bool:
        return self.pid is not None

    def start(self) -> "Engine":
        if answers():
            return self
        _install()
        self.dir = tempfile.mkdtemp(prefix="minet-dockerd-")
        log = open(os.path.join(self.dir, "dockerd.log"), "w")
        try:
            proc = subprocess.Popen(["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none",
                                     "--pidfile", os.path.join(self.dir, "dockerd.pid")],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()
        self.pid = proc.pid
        wait_until(lambda: answers() or proc.poll() is not None, START_TIMEOUT, interval=0.2)
        if not answers():
            tail = self.log_tail()
            self.stop()
            raise EngineUnavailable(f"dockerd did not start: {tail}")
        return self

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir or "", "dockerd.log"), errors="replace") as fh:
                lines = [l.strip() for l in fh if l.strip()]
            return lines[-1] if lines else "(empty log)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.pid is not None:
            host.stop_processes([self.pid], timeout=30)     # our child: reaped on the way
            self.pid = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@contextmanager
def docker_engine() -> Iterator[Engine]:
    engine = Engine().start()
    try:
        yield engine
    finally:
        if answers():
            print("docker ps -a before stopping:\n" + (list_all() or "(no containers)\n"), flush=True)
            left = remove_containers(engine.prefixes) if engine.prefixes else []
            if left:
                print(f"removed containers the tests left: {' '.join(left)}", flush=True)
        engine.stop()
