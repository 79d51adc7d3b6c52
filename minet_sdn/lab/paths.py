"""Where a lab keeps its files: one state directory per lab, named after the topology's instance.

    state = /run/minet-sdn/<topology name>, or $MINET_LAB_ROOT/<name>
    state/lab.json                what exists (namespaces, processes, addresses): state.py
    state/topology.yaml           the EFFECTIVE topology: controller and ssh on the mgmt network
    state/ssh/id_ed25519[.pub]    the lab's client key; state/ssh/known_hosts: every server's host key
    state/<server>/               OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR of that server:
                                  conf.db db.sock ovsdb-server.pid ovs-vswitchd.pid *.log *.mgmt
    state/<server>/ssh/           sshd_config, host key, authorized_keys, sshd.pid, sshd.log
    state/<server>/provision/     MINET_STATE_DIR of that server (provisioning's own state)
    state/controller.log, controller-state.json, provision.log, relay.log, relay.port
    root/.<name>.lock             held by `lab up` / `lab down` (beside, so it outlives the state)
"""
from __future__ import annotations

import os
from typing import Dict

from .. import host
from ..topology import Topology

DEFAULT_ROOT = "/run/minet-sdn"


def lab_root() -> str:
    return os.environ.get("MINET_LAB_ROOT", DEFAULT_ROOT)


def state_dir(topo: Topology) -> str:
    return os.path.join(lab_root(), topo.name)


def state_file(topo: Topology, name: str) -> str:
    """A file directly in the lab's state directory (controller.log, provision.log, ...)."""
    return os.path.join(state_dir(topo), name)


def lab_json_path(topo: Topology) -> str:
    return state_file(topo, "lab.json")


def effective_topology_path(topo: Topology) -> str:
    return state_file(topo, "topology.yaml")


def lock_path(topo: Topology) -> str:
    return os.path.join(lab_root(), f".{topo.name}.lock")


def server_dir(topo: Topology, server: str) -> str:
    """The server's OvS directory (OVS_RUNDIR and friends) and the parent of its other state."""
    return os.path.join(state_dir(topo), server)


def server_ssh_dir(topo: Topology, server: str) -> str:
    return os.path.join(server_dir(topo, server), "ssh")


def provision_state_dir(topo: Topology, server: str) -> str:
    """MINET_STATE_DIR of `server` (what provisioning run on that server keeps)."""
    return os.path.join(server_dir(topo, server), "provision")


def client_key_path(topo: Topology) -> str:
    return os.path.join(state_dir(topo), "ssh", "id_ed25519")


def known_hosts_path(topo: Topology) -> str:
    return os.path.join(state_dir(topo), "ssh", "known_hosts")


def kept_failure_log(topo: Topology, server: str) -> str:
    """Where a failed `lab up` keeps a server's list of FRR daemons that did not start: beside the
    state directory, since the rollback removes the provisioning state it came from."""
    return os.path.join(lab_root(), f"{topo.name}.{server}.frr-start-failures.log")


def kept_link_failures(topo: Topology) -> str:
    """Where `lab down` keeps the links an operator failed (the controller's state file) for the
    next `lab up` of the instance: beside the state directory, which down removes."""
    return os.path.join(lab_root(), f"{topo.name}.link-failures.json")


def server_env(topo: Topology, server: str) -> Dict[str, str]:
    """What a command run "on" `server` needs: its OvS and its provisioning state dir."""
    env = host.ovs_env(server_dir(topo, server))
    env["MINET_STATE_DIR"] = provision_state_dir(topo, server)
    return env


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Write `path` whole or not at all (a reader never sees half a lab.json)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
