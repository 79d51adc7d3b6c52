"""Provisioning the lab's servers, as on real ones: `minet-provision --master` over SSH from the
mgmt namespace (the real master path), with a local fallback for `--down`; what has to hold
before (the machine's capacity, the docker backend's image) and what a failure leaves to read."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import List, Tuple

from ..topology import Topology, names
from . import LabError, Progress, paths
from .state import LabState
from .system import console_argv, last_line, nsenter_argv

# How long `minet-provision --master` may stay silent before the lab gives up on it: a limit on
# silence, not on the whole run (it relays every server's progress every few seconds while it
# works, and gives up on a silent server itself after 300 s), so a topology of any size may take
# the time its start-up needs.
PROVISION_SILENCE = 600.0


def backend_args(state: LabState) -> List[str]:
    """minet-provision options selecting the lab's backend (none for the default netns)."""
    if state.backend == "netns":
        return []
    return ["--backend", state.backend] + (["--image", state.image] if state.image else [])


def run_provision(topo: Topology, state: LabState, progress: Progress, down: bool = False,
                  silence: float = PROVISION_SILENCE) -> Tuple[int, str]:
    """`minet-provision --master` over SSH, from the mgmt namespace; (exit code, last line). Killed
    when it says nothing for `silence` seconds."""
    argv = console_argv("minet-provision", "minet_sdn.cli.provision") + [
        "--topology", state.effective_topology, "--master",
        "--known-hosts", state.ssh.known_hosts, "--identity", state.ssh.key]
    remote = os.path.join(os.path.dirname(sys.executable), "minet-provision")
    if os.path.exists(remote):       # the servers are this machine: the very same installation
        argv += ["--remote-command", remote]
    argv += backend_args(state)
    if down:
        argv.append("--down")
    argv = nsenter_argv(names.mgmt_ns(topo), argv)
    last = ""
    with open(paths.state_file(topo, "provision.log"), "a") as log:
        log.write(f"# {time.strftime('%F %T')}: {' '.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, cwd=paths.state_dir(topo))
        except OSError as exc:
            return 127, str(exc)
        heard = [time.monotonic()]
        done = threading.Event()

        def watchdog() -> None:
            while not done.wait(1.0):
                if time.monotonic() - heard[0] > silence:
                    log.write(f"# said nothing for {silence:g} s: killed\n")
                    proc.kill()
                    return
        threading.Thread(target=watchdog, name="provision-watchdog", daemon=True).start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                heard[0] = time.monotonic()
                log.write(line)
                log.flush()
                line = line.rstrip()
                if line:
                    last = line
                    progress(f"  provision: {line}")
            rc = proc.wait()
        except KeyboardInterrupt:
            # `lab up` interrupted (SIGTERM reaches only the lab): the master forwards it to every
            # server's provisioner and waits for their rollback; the lab's own --down must not run
            # before that, or it races servers still adding routers
            if proc.poll() is None:
                progress("  provision: interrupted: waiting for every server's rollback")
                proc.send_signal(signal.SIGTERM)
                for line in proc.stdout:         # ends when the master exits (the watchdog bounds it)
                    heard[0] = time.monotonic()
                    log.write(line)
                    if line.strip():
                        progress(f"  provision: {line.rstrip()}")
                proc.wait()
            raise
        finally:
            done.set()
    if rc < 0 and time.monotonic() - heard[0] > silence:
        last = f"minet-provision --master said nothing for {silence:g} s: killed"
    return rc, last


def provision_down_locally(topo: Topology, state: LabState, server: str) -> Tuple[int, str]:
    """Fallback of --master --down: the server's own `minet-provision --server X --down`, run in
    its namespace with its environment (as its sshd would), without SSH."""
    env = [f"{k}={v}" for k, v in paths.server_env(topo, server).items()]
    argv = nsenter_argv(names.server_ns(topo, server), ["env", *env] + console_argv(
        "minet-provision", "minet_sdn.cli.provision") + [
        "--topology", state.effective_topology, "--server", server, "--down"] + backend_args(state))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    with open(paths.state_file(topo, "provision.log"), "a") as log:
        log.write(f"# local fallback: {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    return proc.returncode, last_line(proc.stderr or proc.stdout)


def remove_containers(topo: Topology, state: LabState, progress: Progress) -> List[str]:
    """Containers provisioning left (labelled for this instance and one of the lab's servers)."""
    from ..provision.docker import DockerProblem, list_containers
    from ..provision.image import docker
    try:
        left = [c for c in list_containers(topo.name) if c["server"] in state.servers]
        for c in left:
            progress(f"removing container {c['name']} that provisioning left")
            docker("rm", "--force", "--volumes", c["id"])
    except DockerProblem as exc:
        return [f"containers of {topo.name}: {exc}"]
    return []


def ensure_image(state: LabState, progress: Progress) -> None:
    """The docker backend's image, built here when missing: the emulated servers share this
    machine's docker engine but have no way out to the Debian mirror the build needs."""
    from ..provision.image import ImageProblem, docker_problem, ensure_image, image_name
    why = docker_problem()
    if why:
        raise LabError(f"docker backend: {why}")
    name = state.image or image_name()
    try:
        took = ensure_image(name, progress)
    except ImageProblem as exc:
        raise LabError(f"docker backend: {exc}") from None
    progress(f"docker image {name}: " + (f"built in {took:.1f} s" if took is not None else "present"))


def check_capacity(topo: Topology, progress: Progress, backend: str = "netns") -> None:
    """Every server of the lab runs on this machine: refuse before building anything if the whole
    topology does not fit (see provision/capacity.py)."""
    from ..provision import capacity
    from ..provision.apply import ensure_neighbour_limits
    from ..provision.plan import build_plan
    plans = [build_plan(topo, server) for server in topo.servers]
    shared = capacity.sharing([r for p in plans for r in p.routers], backend == "netns")
    need = capacity.estimate(capacity.topology_daemon_lists(plans), servers=len(topo.servers), shared=shared)
    progress(f"estimate: {need.line()}")
    for change in ensure_neighbour_limits(need.routers):   # every server shares this kernel's table
        progress(change)
    if not capacity.enabled():
        return
    why = capacity.refusal(need, capacity.available_mb(), capacity.free_pids())
    if why:
        raise LabError(why)


def keep_failure_logs(topo: Topology, message: str) -> str:
    """The servers' lists of FRR daemons that did not start live in their provisioning state,
    which the rollback removes: keep copies beside the lab's state, and name those instead."""
    for server in topo.servers:
        dst = paths.kept_failure_log(topo, server)
        src = os.path.join(paths.provision_state_dir(topo, server), os.path.basename(dst))
        if os.path.exists(src):
            try:
                shutil.copyfile(src, dst)
            except OSError:
                continue
            message = message.replace(src, dst)
    return message


def forget_failure_logs(topo: Topology) -> None:
    """The copies keep_failure_logs made, once the lab goes down."""
    for server in topo.servers:
        try:
            os.unlink(paths.kept_failure_log(topo, server))
        except OSError:
            pass
