"""Running a command in a node for the watch tools: where the node is comes from its place
(topology/places.py: `NodePlace.exec_prefix()`, `NodePlace.vtysh_argv()`), given by the caller
(the lab's places for `minet matrix`/`minet lg`, the controller's for its status page)."""
from __future__ import annotations

import subprocess
from typing import List, Sequence, Tuple

from ..errors import UserError
from ..topology.places import Places


class NodeError(UserError):
    """A node that does not exist or cannot be reached; one line."""


def exec_argv(places: Places, node: str, argv: Sequence[str]) -> List[str]:
    """Full argv running `argv` inside `node` (NodeError when there is no such node)."""
    place = places.get(node)
    if place is None:
        raise NodeError(f"no node {node} in {places.topo.name}")
    return place.exec_prefix() + list(argv)


def vtysh_argv(places: Places, router: str, command: str) -> List[str]:
    """argv of `vtysh -c COMMAND` on `router`, on its own sockets (in its container on docker)."""
    try:
        return places.router(router).vtysh_argv(command)
    except KeyError:
        raise NodeError(f"no router {router} in {places.topo.name}") from None


def run(argv: Sequence[str], timeout: float) -> Tuple[int, str, str]:
    """(exit code, stdout, stderr); exit code 124 on timeout, 127 when the program is missing."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out, f"timed out after {timeout:g} s"
    except OSError as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr
