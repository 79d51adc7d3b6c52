"""Master mode: provision every server of a topology, each over SSH (paramiko), in parallel.

Per server: one SSH connection, reused for every command: `mktemp` on the server, SFTP upload of
the topology there, `minet-provision --topology <copy> --server X --json [--down]` (its stderr
progress is relayed line by line, its stdout is the JSON report), then removal of the copy.
Host keys are checked against known_hosts (the user's, or --known-hosts FILE) and an unknown or
changed key is refused unless insecure_host_keys is set. Authentication is by key only
(--identity FILE, else the agent and ~/.ssh keys).

An interrupt of the master (SIGINT, SIGTERM) is forwarded: each server's provisioner gets SIGTERM
(over a second channel of the connection the master holds: `kill` of the pid the command announced
first), which makes it roll back what it created; the master waits for every rollback before it
exits, so nothing a server was still adding survives the master or races a `--down` run after it.
"""
from __future__ import annotations

import json
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Tuple

from ..messages import clip_line
from ..topology import loader
from ..topology.model import Server, Topology
from .journal import interrupts_ignored

SSH_RE = loader.SSH_RE       # the one pattern: what the loader accepted, parse_ssh reads
CONNECT_TIMEOUT = 15.0
DEFAULT_REMOTE_COMMAND = "minet-provision"
PID_LINE = "minet-provision-pid "     # the first stderr line of a remote provisioner: its pid

Progress = Callable[[str], None]


@dataclass
class ServerResult:
    server: str
    ok: bool
    via: str                             # "ssh root@host:22" or "local"
    exit_code: Optional[int] = None
    report: Optional[dict] = None        # the remote --json report
    error: Optional[str] = None
    seconds: float = 0.0
    stderr_tail: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        if self.ok:
            n = (self.report or {}).get("n_changes", "?")
            return f"{self.server}: ok, {n} changes ({self.seconds:.1f}s, {self.via})"
        return f"{self.server}: FAILED: {clip_line(str(self.error))} ({self.via})"


def parse_ssh(spec: str) -> Tuple[Optional[str], str, int]:
    """`[user@]host[:port]` -> (user or None, host, port)."""
    m = SSH_RE.fullmatch(spec)
    if not m:
        raise ValueError(f"{spec!r} is not [USER@]HOST[:PORT]")
    host = m.group("host")
    if host.startswith("["):
        host = host[1:-1]
    return m.group("user"), host, int(m.group("port") or 22)


@dataclass
class SshOptions:
    known_hosts: Optional[str] = None
    identity: Optional[str] = None
    insecure_host_keys: bool = False
    remote_command: str = DEFAULT_REMOTE_COMMAND
    connect_timeout: float = CONNECT_TIMEOUT
    # How long the remote minet-provision may stay silent (it reports progress every few seconds
    # while it works): a limit on silence, not on the whole run, so a server holding many routers
    # may take as long as its start-up needs.
    idle_timeout: float = 300.0


def _remote_argv(command: str, topo_path: str, server: str, down: bool, extra: List[str]) -> str:
    argv = shlex.split(command) + ["--topology", topo_path, "--server", server, "--json", *extra]
    if down:
        argv.append("--down")
    return " ".join(shlex.quote(a) for a in argv)


def _parse_report(stdout: str) -> Optional[dict]:
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    try:
        doc = json.loads(stdout)
        return doc if isinstance(doc, dict) else None
    except ValueError:
        return None


def _finish(result: ServerResult, code: int, stdout: str, stderr_lines: List[str]) -> ServerResult:
    result.exit_code = code
    result.report = _parse_report(stdout)
    result.stderr_tail = stderr_lines[-20:]
    if code == 0 and result.report is not None and result.report.get("ok", True):
        result.ok = True
    else:
        result.ok = False
        result.error = ((result.report or {}).get("error")
                        or next((l for l in reversed(stderr_lines) if l.strip()), None)
                        or f"exit status {code}")
    return result


def provision_over_ssh(server: Server, topo_text: str, down: bool, opts: SshOptions, progress: Progress,
                       extra: Optional[List[str]] = None, stop: Optional[threading.Event] = None) -> ServerResult:
    import paramiko

    t0 = time.monotonic()
    user, host, port = parse_ssh(server.ssh or "")
    via = f"ssh {user + '@' if user else ''}{host}:{port}"
    result = ServerResult(server=server.name, ok=False, via=via)
    client = paramiko.SSHClient()
    try:
        result.error = connect(client, server, opts)
        if result.error:
            return result
        code, out, _ = _exec(client, "mktemp -t minet-topology.XXXXXXXX", 30)
        path = out.strip()
        if code != 0 or not path.startswith("/"):
            result.error = f"mktemp on the server failed (exit {code})"
            return result
        try:
            with client.open_sftp() as sftp:
                with sftp.open(path, "w") as fh:
                    fh.write(topo_text)
            progress(f"[{server.name}] topology uploaded to {path}; running {opts.remote_command}")
            cmd = _remote_argv(opts.remote_command, path, server.name, down, extra or [])
            # its pid first, then the provisioner in its place (exec: the same pid), for an interrupt
            cmd = f"echo {PID_LINE}$$ >&2; exec {cmd}"
            lines: List[str] = []

            def on_line(line: str) -> None:
                lines.append(line)
                progress(line if line.startswith(f"[{server.name}]") else f"[{server.name}] {line}")

            def on_stop() -> None:
                progress(f"[{server.name}] interrupted: its provisioner is told to stop and roll back")

            code, out, _ = _exec(client, cmd, opts.idle_timeout, on_stderr_line=on_line, stop=stop,
                                 on_stop=on_stop)
            _finish(result, code, out, lines)
        finally:
            _exec(client, f"rm -f {shlex.quote(path)}", 30)
    except Exception as exc:        # one server's surprise must not take the others down
        result.ok = False
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
        result.seconds = round(time.monotonic() - t0, 3)
    return result


def connect(client, server: Server, opts: SshOptions) -> Optional[str]:
    """Connect paramiko `client` to `server` as `opts` say (host keys checked unless
    --insecure-host-keys); None, or the one-line reason it could not."""
    import paramiko
    user, host, port = parse_ssh(server.ssh or "")
    if opts.known_hosts:
        client.load_host_keys(opts.known_hosts)
    else:
        client.load_system_host_keys()
    if opts.insecure_host_keys:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kw = dict(hostname=host, port=port, timeout=opts.connect_timeout, banner_timeout=opts.connect_timeout,
              auth_timeout=opts.connect_timeout)
    if user:
        kw["username"] = user
    if opts.identity:
        kw.update(key_filename=opts.identity, look_for_keys=False, allow_agent=False)
    try:
        client.connect(**kw)
    except paramiko.BadHostKeyException as exc:
        if opts.insecure_host_keys:
            raise
        return (f"host key of {host}:{port} does not match known_hosts "
                f"({exc.key.get_name()} {exc.key.get_base64()[:16]}...): refused")
    except paramiko.SSHException as exc:
        return f"ssh to {host}:{port}: {exc}"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return None


def _exec(client, command: str, timeout: float,
          on_stderr_line: Optional[Callable[[str], None]] = None, stop: Optional[threading.Event] = None,
          on_stop: Optional[Callable[[], None]] = None) -> Tuple[int, str, str]:
    """Run one command on the connection; stream stderr lines; (exit status, stdout, stderr).
    `timeout` bounds the silence: it fails when nothing came for that long. With `stop`: the
    command announces its pid first (a PID_LINE on stderr); once `stop` is set, that pid is sent
    SIGTERM over another channel and the command is still read to its end (its rollback)."""
    chan = client.get_transport().open_session()
    chan.settimeout(timeout)
    chan.exec_command(command)
    out, err, partial = [], [], ""
    pid: Optional[int] = None
    signalled = False
    deadline = time.monotonic() + timeout
    while True:
        if stop is not None and stop.is_set() and not signalled and pid is not None:
            signalled = True
            if on_stop:
                on_stop()
            deadline = time.monotonic() + timeout
            _exec(client, f"kill -TERM {pid}", 30)
        if chan.recv_ready():
            deadline = time.monotonic() + timeout
            out.append(chan.recv(65536).decode(errors="replace"))
            continue
        if chan.recv_stderr_ready():
            deadline = time.monotonic() + timeout
            chunk = chan.recv_stderr(65536).decode(errors="replace")
            err.append(chunk)
            partial += chunk
            *complete, partial = partial.split("\n")
            for line in complete:
                if stop is not None and pid is None and line.startswith(PID_LINE):
                    pid = int(line[len(PID_LINE):].strip() or 0) or None
                elif on_stderr_line and line.strip():
                    on_stderr_line(line.rstrip())
            continue
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            chan.close()
            raise TimeoutError(f"{command.split()[0]} said nothing for {timeout:g} s: given up")
        select.select([chan], [], [], 0.2)
    if on_stderr_line and partial.strip():
        on_stderr_line(partial.rstrip())
    status = chan.recv_exit_status()
    chan.close()
    return status, "".join(out), "".join(err)


def provision_locally(server: Server, topo_path: str, down: bool, progress: Progress,
                      extra: Optional[List[str]] = None, stop: Optional[threading.Event] = None) -> ServerResult:
    """A server without `ssh`, named by --local-server: the same command as a local subprocess."""
    t0 = time.monotonic()
    result = ServerResult(server=server.name, ok=False, via="local")
    argv = [sys.executable, "-m", "minet_sdn.cli.provision", "--topology", topo_path, "--server", server.name,
            "--json", *(extra or [])] + (["--down"] if down else [])
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: List[str] = []
    out_chunks: List[str] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    if stop is not None:
        def forward() -> None:             # the master was interrupted: this one rolls back too
            while proc.poll() is None:
                if stop.wait(0.5):
                    if proc.poll() is None:
                        progress(f"[{server.name}] interrupted: its provisioner is told to stop and roll back")
                        proc.send_signal(signal.SIGTERM)
                    return
        threading.Thread(target=forward, daemon=True).start()
    for line in proc.stderr:
        line = line.rstrip()
        if line:
            lines.append(line)
            progress(line if line.startswith(f"[{server.name}]") else f"[{server.name}] {line}")
    code = proc.wait()
    reader.join()
    _finish(result, code, "".join(out_chunks), lines)
    result.seconds = round(time.monotonic() - t0, 3)
    return result


def master_targets(topo: Topology, local_server: Optional[str]) -> List[str]:
    """Problems that stop master mode before it starts (servers it cannot reach)."""
    problems = []
    for name, server in topo.servers.items():
        if not server.ssh and name != local_server:
            problems.append(f"{topo.source}: servers.{name}.ssh: missing; master mode reaches every server over "
                            f"SSH (or name this one with --local-server {name})")
    if local_server and local_server not in topo.servers:
        problems.append(f"{topo.source}: --local-server {local_server}: not a server of this topology "
                        f"({', '.join(topo.servers)})")
    return problems


def run_master(topo: Topology, topo_path: str, down: bool, opts: SshOptions, progress: Progress,
               local_server: Optional[str] = None, extra: Optional[List[str]] = None) -> List[ServerResult]:
    """Every server in parallel (one thread each); results in the topology's server order."""
    with open(topo_path) as fh:
        text = fh.read()
    servers = list(topo.servers.values())

    stop = threading.Event()

    def one(server: Server) -> ServerResult:
        if server.name == local_server and not server.ssh:
            return provision_locally(server, topo_path, down, progress, extra, stop=stop)
        return provision_over_ssh(server, text, down, opts, progress, extra, stop=stop)

    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        futures = [pool.submit(one, server) for server in servers]
        try:
            wait(futures)
        except KeyboardInterrupt:
            # forward it, then wait for every server's rollback (a second interrupt here is
            # ignored: leaving now would leave servers half-built behind the master's back)
            with interrupts_ignored():
                stop.set()
                progress("interrupted: every server's provisioner is told to stop; waiting for their rollback")
                wait(futures)
            raise Interrupted([f.result() for f in futures])
        return [f.result() for f in futures]


class Interrupted(KeyboardInterrupt):
    """The master was interrupted; `results`: what each server's provisioner said after it."""

    def __init__(self, results: List[ServerResult]):
        super().__init__()
        self.results = results

