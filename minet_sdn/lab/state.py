"""lab.json as a type: every namespace, process and address a lab made, saved as soon as it
exists, so that teardown removes exactly that (and nothing with a merely similar name), even after
a failure half-way.

Every field and its default is declared once, below. Reading validates the file against those
declarations: a file that is not JSON, or holds a value of the wrong type, is a LabError naming
the file ("unreadable lab state FILE: ..."), never a traceback later; a missing or null field
takes its default (a lab half-built by an older run stays readable).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Union, get_args, get_origin, get_type_hints

from .. import host
from ..topology import Topology
from . import LabError, paths

STATE_VERSION = 1


@dataclass
class ProcessRecord:
    """A daemon the lab started. The start time tells it from a later process given the same pid."""
    name: str
    pid: int
    start: Optional[int] = None
    pidfile: Optional[str] = None
    log: Optional[str] = None

    @classmethod
    def of(cls, name: str, pid: int, pidfile: Optional[str] = None, log: Optional[str] = None) -> "ProcessRecord":
        return cls(name, pid, host.proc_starttime(pid), pidfile, log)

    def alive(self) -> bool:
        """Still the recorded process (same start time) and running (a zombie counts as gone)."""
        start = host.proc_starttime(self.pid)
        if start is None or (self.start is not None and start != self.start):
            return False
        return host.pid_alive(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM it (if it is still the same process), then SIGKILL after `timeout`."""
        if self.alive():
            host.stop_processes([self.pid], timeout, alive=lambda _pid: self.alive())


@dataclass
class ServerRecord:
    """An emulated server: its namespace, OvS directory, addresses and the ports made for it."""
    ns: str = ""
    index: int = 0
    dir: str = ""                      # its OvS directory
    state_dir: str = ""                # its provisioning state (MINET_STATE_DIR)
    mgmt_ip: str = ""
    underlay_ip: str = ""
    ssh: str = ""                      # root@<mgmt_ip>:<port>
    underlay_if: Optional[str] = None
    underlay_peer_if: Optional[str] = None
    phy_bridge: Optional[str] = None
    mgmt_if: Optional[str] = None
    mgmt_peer_if: Optional[str] = None


@dataclass
class MgmtRecord:
    ns: str = ""
    bridge: str = ""
    ip: str = ""


@dataclass
class UnderlayRecord:
    ns: str = ""
    bridge: str = ""
    mtu: int = 0


@dataclass
class SshRecord:
    key: str = ""
    known_hosts: str = ""
    port: int = 22


@dataclass
class ControllerRecord:
    ofp: str = ""
    rest: str = ""                     # the URL inside the mgmt namespace
    log: Optional[str] = None


@dataclass
class LabState:
    path: str = field(default="", metadata={"file": False})      # where it is saved; not in the file
    version: int = STATE_VERSION
    name: str = ""
    tag: str = ""
    topology: str = ""                 # the user's file, absolute
    topology_sha256: str = ""          # of that file: `lab up` of a changed file is refused
    effective_topology: str = ""
    mgmt_subnet: str = ""
    phase: str = "building"            # building, servers, provisioning, provisioned, up
    created: float = 0.0
    backend: str = "netns"             # how provisioning makes the nodes: netns or docker
    image: Optional[str] = None        # the docker backend's image as `lab up` resolved it
    provisioned: bool = False
    up_seconds: Optional[float] = None
    baseline: bool = False             # bench/baseline.py turned it into the static design
    namespaces: List[str] = field(default_factory=list)
    processes: List[ProcessRecord] = field(default_factory=list)
    mgmt: MgmtRecord = field(default_factory=MgmtRecord)
    underlay: UnderlayRecord = field(default_factory=UnderlayRecord)
    servers: Dict[str, ServerRecord] = field(default_factory=dict)
    ssh: SshRecord = field(default_factory=SshRecord)
    controller: Optional[ControllerRecord] = None
    rest_relay: Optional[str] = None   # the relay's URL on this host's loopback

    @classmethod
    def load(cls, topo: Topology) -> Optional["LabState"]:
        """The lab state of `topo`'s instance, None when there is none; LabError when unreadable."""
        path = paths.lab_json_path(topo)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            raise LabError(f"unreadable lab state {path}: {exc}; remove it by hand if the lab is gone")
        try:
            state = _decode(cls, data, "")
        except _Shape as exc:
            raise LabError(f"unreadable lab state {path}: {exc}; remove it by hand if the lab is gone")
        state.path = path
        return state

    def save(self) -> None:
        data = dataclasses.asdict(self)
        del data["path"]
        paths.write_atomic(self.path, json.dumps(data, indent=1) + "\n")

    def add_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def add_process(self, record: ProcessRecord) -> None:
        self.processes[:] = [p for p in self.processes if p.name != record.name] + [record]
        self.save()

    def process(self, name: str) -> Optional[ProcessRecord]:
        return next((p for p in self.processes if p.name == name), None)

    def drop_process(self, name: str) -> None:
        self.processes[:] = [p for p in self.processes if p.name != name]
        self.save()


def require(topo: Topology, topo_path: str) -> LabState:
    """The state of the lab of `topo_path`; LabError saying how to start it when there is none."""
    state = LabState.load(topo)
    if state is None:
        raise LabError(f"no lab of {topo_path} is up (start it with `minet lab up {topo_path}`)")
    return state


def topology_digest(topo_path: str) -> str:
    with open(topo_path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@contextlib.contextmanager
def lab_lock(topo: Topology) -> Iterator[None]:
    """Serialise up/down of one lab (a second `lab up` waits for none: it fails at once)."""
    os.makedirs(paths.lab_root(), mode=0o755, exist_ok=True)
    path = paths.lock_path(topo)
    try:
        with host.file_lock(path, blocking=False):
            try:
                yield
            finally:
                if not os.path.exists(paths.state_dir(topo)):   # no lab (down, or a failed up): no lock file
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    with contextlib.suppress(OSError):
                        os.rmdir(paths.lab_root())              # only if no other lab is left
    except host.Busy:
        raise LabError(f"another `lab up` or `lab down` of {topo.name} is running") from None


# ---- reading the file against the declarations above ----------------------------------------

class _Shape(Exception):
    """What makes the file not a lab state (one line)."""


_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _bad(where: str, value: Any, what: str) -> _Shape:
    return _Shape(f"{where or 'the file'} is {json.dumps(value)[:40]}, not {what}")


def _decode(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `tp`: a record, Optional, List, Dict or a scalar."""
    origin = get_origin(tp)
    if origin is Union:                                   # Optional[X]
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return None if value is None else _decode(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise _bad(where, value, "a list")
        return [_decode(get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad(where, value, "an object")
        return {k: _decode(get_args(tp)[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _bad(where, value, "an object")
        hints = get_type_hints(tp)
        given: Dict[str, Any] = {}
        for f in dataclasses.fields(tp):
            if not f.metadata.get("file", True):
                continue
            if value.get(f.name) is not None:
                given[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}" if where else f.name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Shape(f"{where or 'the file'} has no {f.name}")
        return tp(**given)
    if isinstance(value, bool) and tp is not bool:        # JSON true is no number
        raise _bad(where, value, _KIND[tp])
    if tp is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, tp):
        raise _bad(where, value, _KIND[tp])
    return value
