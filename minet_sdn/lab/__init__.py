"""The embedded multi-server lab: every server of a topology emulated on one machine.

Modules, by concern (each imports only those above it):
  paths         where a lab keeps its files (the state directory's layout); atomic writes
  state         lab.json as a type (LabState), read back with validation; the lab's lock
  system        commands, daemons, network namespaces and sockets inside them
  networks      the mgmt and underlay networks: addressing, and each server's ports on them
  sshd          each emulated server's sshd and the lab's client key
  effective     the user's topology loaded for the lab, and its effective copy (mgmt network)
  servers       the emulated servers built (namespaces, OvS, networks, sshd) and torn down
  places        each node's place in the lab (topology/places.py with the lab's state roots), and
                the lab's own nodes (mgmt, underlay, servers) for exec
  convergence   BGP sessions and routes of the lab's routers, waiting until they converge
  controller    the controller in the mgmt namespace, the REST relay, the lab's REST client
  provisioning  minet-provision over SSH (and its local fallback), capacity, docker image
  lab           class Lab: up, down, remove, status, exec, places (what the CLI and benches call)
  observe       watching a running lab (benches and end-to-end tests)
  relay         the relay process (python -m minet_sdn.cli.relay)
  cli           `lab up|down|status FILE`, `exec FILE NODE -- CMD`
"""
from __future__ import annotations

import sys
import time
from typing import Callable

from ..errors import UserError

Progress = Callable[[str], None]


class LabError(UserError):
    """A lab operation failed; the message is one line meant for the user."""


def quiet(_msg: str) -> None:
    """A progress callback that says nothing."""


def printing_progress(stream=None) -> Progress:
    """A progress callback printing `[  1.2s] message` lines."""
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        out = stream or sys.stdout
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=out, flush=True)
    return progress
