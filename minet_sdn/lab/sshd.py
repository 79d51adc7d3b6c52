"""Each emulated server's sshd, and the lab's client key: provisioning reaches the servers over
real SSH (master mode, from the mgmt namespace), exactly as it reaches real ones.

sshd listens on the server's mgmt address only, accepts the lab's key only, and sets the
server's environment (its OvS directory, its provisioning state dir, this Python on PATH).
"""
from __future__ import annotations

import os
import sys

from ..topology import Topology, names
from . import LabError, paths
from .state import LabState, ProcessRecord
from .system import nsenter_argv, read_pidfile, run, wait_tcp

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22


def make_client_key(topo: Topology) -> None:
    key = paths.client_key_path(topo)
    os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
    if not os.path.exists(key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"minet-lab-{topo.name}", "-f", key])


def sshd_config_text(topo: Topology, server: str, address: str) -> str:
    sd = paths.server_ssh_dir(topo, server)
    env = paths.server_env(topo, server)
    # Commands over SSH must find the same Python (and minet-provision) as the lab itself.
    path = os.pathsep.join(dict.fromkeys([os.path.dirname(os.path.realpath(sys.executable)),
                                          os.path.dirname(sys.executable),
                                          "/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                          "/usr/bin", "/sbin", "/bin"]))
    setenv = " ".join(f"{k}={v}" for k, v in list(env.items()) + [("PATH", path)])
    return "\n".join([
        f"# sshd of the emulated server {server} of the lab {topo.name} (generated)",
        f"ListenAddress {address}:{SSH_PORT}",
        f"HostKey {sd}/ssh_host_ed25519_key",
        f"PidFile {sd}/sshd.pid",
        f"AuthorizedKeysFile {sd}/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AllowUsers root",
        "StrictModes yes",
        "PermitUserEnvironment no",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        "PrintMotd no",
        "UseDNS no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",
        f"SetEnv {setenv}",
        "",
    ])


def start_sshd(topo: Topology, server: str, state: LabState, address: str) -> None:
    """sshd of `server`, listening on its mgmt address only, started inside its namespace."""
    sd = paths.server_ssh_dir(topo, server)
    os.makedirs(sd, mode=0o700, exist_ok=True)
    hostkey = f"{sd}/ssh_host_ed25519_key"
    if not os.path.exists(hostkey):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{topo.name}-{server}", "-f", hostkey])
    with open(paths.client_key_path(topo) + ".pub") as fh:
        paths.write_atomic(f"{sd}/authorized_keys", fh.read(), 0o600)
    config = f"{sd}/sshd_config"
    paths.write_atomic(config, sshd_config_text(topo, server, address), 0o600)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)     # sshd's privilege separation directory
    run([SSHD, "-t", "-f", config])
    ns = names.server_ns(topo, server)
    run(nsenter_argv(ns, [SSHD, "-f", config, "-E", f"{sd}/sshd.log"]))
    pid = read_pidfile(f"{sd}/sshd.pid")
    state.add_process(ProcessRecord.of(f"{server}/sshd", pid, f"{sd}/sshd.pid"))
    if not wait_tcp(ns, address, SSH_PORT, timeout=10):
        raise LabError(f"sshd of {server} does not accept connections on {address}:{SSH_PORT} "
                       f"(see {sd}/sshd.log)")


def host_key_line(topo: Topology, server: str, address: str) -> str:
    """The known_hosts line of `server`'s host key at `address`."""
    with open(f"{paths.server_ssh_dir(topo, server)}/ssh_host_ed25519_key.pub") as fh:
        keytype, key = fh.read().split()[:2]
    where = address if SSH_PORT == 22 else f"[{address}]:{SSH_PORT}"
    return f"{where} {keytype} {key}"
