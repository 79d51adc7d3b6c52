"""The `docker` backend: every node is a container with no network of its own (``--network none``).

The same plan drives it as the netns backend; only where a node lives differs:

    container        named ``Node.ns`` (``<tag>-<node>``, see `container_name`), image from `image.py`,
                     labels org.minet-sdn.instance / .server / .node, caps NET_ADMIN + SYS_ADMIN,
                     IPv6 enabled, docker's init (tini) as pid 1 running ``sleep infinity``;
                     a router's FRR directory (frr.conf, pid files, vty sockets, logs) is
                     bind-mounted at the same path, so the FRR command lines, `vtysh --vty_socket`
                     and the files are the same as with the netns backend
    network          the container's namespace, reached through its pid (``/proc/PID/ns/net``):
                     apply creates veths here and moves the node's end in, with pyroute2, exactly as
                     for a named namespace (same names, addresses, MACs, MTUs, sysctls)
    FRR              started by ``docker exec CONTAINER /usr/lib/frr/<daemon> -d ...``: the image's
                     FRR, running as the image's user frr (the directory is chowned to its ids)
    identity         the container id (the marker file holds it); `down` removes a container only
                     when its id is the one recorded, so a foreign container survives even under
                     the same name
    pids             FRR writes its pid as the container sees it; `host_pid` maps it back

It needs a running docker engine (one clear line when /var/run/docker.sock is missing); the
image is built locally when missing (`image.ensure_image`).
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

from ..topology import names
from . import image as img
from .image import ImageProblem, docker
from .netns import _alive, ns_identity
from .plan import Node, Plan

LABEL_INSTANCE = "org.minet-sdn.instance"
LABEL_SERVER = "org.minet-sdn.server"
LABEL_NODE = "org.minet-sdn.node"
CAPS = ("NET_ADMIN", "SYS_ADMIN")
SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0")
COMMAND = ("sleep", "infinity")
FRR_RUN = "run/frr"             # inside the container: FRR's default run dir, must belong to frr
START_TIMEOUT = 20.0

DockerProblem = ImageProblem


def container_name(node: Node) -> str:
    """The node's container name (`names.container_name` of its `<tag>-<node>`)."""
    return names.container_name(node.ns)


def instance_labels(instance: str, server: str) -> Dict[str, str]:
    return {LABEL_INSTANCE: instance, LABEL_SERVER: server}


def list_containers(instance: str, server: Optional[str] = None) -> List[Dict[str, str]]:
    """Containers (any state) labelled for `instance` (and `server`): [{"id", "name", "node", "server"}]."""
    args = ["ps", "-a", "--no-trunc", "--filter", f"label={LABEL_INSTANCE}={instance}"]
    if server is not None:
        args += ["--filter", f"label={LABEL_SERVER}={server}"]
    res = docker(*args, "--format", "{{json .}}")
    out = []
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        labels = dict(kv.split("=", 1) for kv in (row.get("Labels") or "").split(",") if "=" in kv)
        out.append({"id": row["ID"], "name": row["Names"], "node": labels.get(LABEL_NODE, ""),
                    "server": labels.get(LABEL_SERVER, "")})
    return out


class DockerBackend:
    name = "docker"
    uses_host_frr = False      # FRR comes from the image: this machine needs none
    merges_pages = False       # `docker exec` starts FRR under the container runtime, not under us, so
                               # our KSM opt-in is not inherited (fabric.share_memory does nothing here)

    def __init__(self, plan: Plan, image: Optional[str] = None, progress: Optional[Callable[[str], None]] = None):
        self.plan = plan
        self.image = img.image_name(image)
        self._progress = progress or (lambda msg: None)
        self._confdirs = {r.node: r.confdir for r in plan.routers}
        self._state: Dict[str, dict] = {}          # container name or id -> inspected state (this run)
        self._frr_ids: Optional[Tuple[int, int]] = None

    # ---- the engine and the image ---------------------------------------------------------
    def preflight(self) -> List[str]:
        why = img.docker_problem()
        if why:
            return [why]
        try:
            took = img.ensure_image(self.image, self._progress)
        except ImageProblem as exc:
            return [str(exc)]
        if took is not None:
            self._progress(f"docker image {self.image} built in {took:.1f} s")
        return []

    # ---- what a node is ---------------------------------------------------------------------
    def _inspect(self, ref: str, fresh: bool = False) -> Optional[dict]:
        if not fresh and ref in self._state:
            return self._state[ref]
        res = docker("container", "inspect", "--format",
                     "{{json .Id}} {{json .State.Running}} {{json .State.Pid}} {{json .Config.Labels}}",
                     ref, check=False, timeout=30)
        if res.returncode != 0:
            if "No such" in (res.stderr + res.stdout):
                self._state.pop(ref, None)
                return None
            raise DockerProblem(f"docker inspect {ref}: {img.last_line(res.stderr or res.stdout)}")
        cid, running, pid, labels = (json.loads(x) for x in res.stdout.split(" ", 3))
        info = {"id": cid, "running": bool(running) and pid > 0, "pid": int(pid), "labels": labels or {}}
        self._state[ref] = self._state[cid] = info
        return info

    def _forget(self, *refs: str) -> None:
        for ref in refs:
            self._state.pop(ref, None)

    def identity(self, node: Node) -> Optional[str]:
        """The container id (None: no container of that name). Stopped counts as existing."""
        info = self._inspect(container_name(node), fresh=True)
        return info["id"] if info else None

    def nspath(self, node: Node) -> str:
        """/proc/PID/ns/net of the container; a stopped container of ours is started again first
        (its namespace is new and empty then: apply rebuilds interfaces and FRR in it)."""
        name = container_name(node)
        info = self._inspect(name)
        if info is None:
            raise DockerProblem(f"container {name} does not exist")
        if not info["running"] or not _alive(info["pid"]):
            info = self._inspect(name, fresh=True)
            if info is None:
                raise DockerProblem(f"container {name} does not exist")
            if not info["running"]:
                self._progress(f"starting stopped container {name}")
                docker("start", info["id"], timeout=60)
                info = self._wait_running(name)
                self._prepare(node, info)
        return f"/proc/{info['pid']}/ns/net"

    def _wait_running(self, ref: str) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            info = self._inspect(ref, fresh=True)
            if info and info["running"]:
                return info
            if time.monotonic() > deadline:
                raise DockerProblem(f"container {ref} is not running after {START_TIMEOUT:g} s")
            time.sleep(0.05)

    def _labels(self, node: Node) -> Dict[str, str]:
        return {**instance_labels(self.plan.instance, self.plan.server), LABEL_NODE: node.id}

    def create(self, node: Node) -> str:
        name = container_name(node)
        args = ["run", "--detach", "--name", name, "--hostname", node.id, "--network", "none", "--init",
                "--restart", "no", "--log-driver", "none"]
        for cap in CAPS:
            args += ["--cap-add", cap]
        for sysctl in SYSCTLS:
            args += ["--sysctl", sysctl]
        for k, v in self._labels(node).items():
            args += ["--label", f"{k}={v}"]
        confdir = self._confdirs.get(node.id)
        if confdir:
            os.makedirs(confdir, exist_ok=True)
            args += ["--volume", f"{confdir}:{confdir}"]
        args += [self.image, *COMMAND]
        res = docker(*args, check=False, timeout=120)
        if res.returncode != 0:
            cid = res.stdout.strip()
            if cid:                       # created but not started: do not leave it behind
                docker("rm", "--force", "--volumes", cid, check=False, timeout=60)
            raise DockerProblem(f"docker run {name}: {img.last_line(res.stderr or res.stdout)}")
        info = self._wait_running(res.stdout.strip())
        self._state[name] = info
        self._prepare(node, info)
        return info["id"]

    def _prepare(self, node: Node, info: dict) -> None:
        """A router's container gets FRR's run dir, owned by the image's frr (through /proc/PID/root)."""
        if node.id not in self._confdirs:
            return
        root = f"/proc/{info['pid']}/root"
        uid, gid = self.frr_ids(root)
        run = os.path.join(root, FRR_RUN)
        os.makedirs(run, exist_ok=True)
        os.chown(run, uid, gid)

    def delete(self, node: Node, identity: str) -> None:
        """Remove the container (and everything running in it) if it still is `identity`."""
        info = self._inspect(container_name(node), fresh=True)
        if info is None or info["id"] != identity:
            return
        docker("rm", "--force", "--volumes", identity, timeout=120)
        self._forget(container_name(node), identity)

    # ---- processes --------------------------------------------------------------------------
    def exec_args(self, node: Node, argv: List[str]) -> List[str]:
        return names.exec_prefix("docker", node.ns, docker=img.docker_cli() or "docker") + list(argv)

    def _netns_of(self, identity: str) -> Optional[str]:
        info = self._inspect(identity)
        if info is None or not info["running"]:
            return None
        ident = ns_identity(f"/proc/{info['pid']}/ns/net")
        if ident is None:               # restarted since we looked
            info = self._inspect(identity, fresh=True)
            ident = ns_identity(f"/proc/{info['pid']}/ns/net") if info and info["running"] else None
        return ident

    def process_in(self, pid: int, identity: str) -> bool:
        """Is host pid `pid` alive inside container `identity`?"""
        netns = self._netns_of(identity)
        return netns is not None and ns_identity(f"/proc/{pid}/ns/net") == netns and _alive(pid)

    def host_pid(self, pid: int, identity: str) -> Optional[int]:
        """The host pid of the process the container knows as `pid` (FRR's pid files hold those)."""
        netns = self._netns_of(identity)
        if netns is None:
            return None
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or ns_identity(f"/proc/{entry}/ns/net") != netns:
                continue
            if _inner_pid(int(entry)) == pid and _alive(int(entry)):
                return int(entry)
        return None

    def frr_ids(self, root: Optional[str] = None) -> Tuple[int, int]:
        """(uid, gid) of user frr in the image, read from a running container's /etc/passwd."""
        if self._frr_ids is None:
            if root is None:
                for node in self.plan.nodes:
                    info = self._inspect(container_name(node))
                    if info and info["running"]:
                        root = f"/proc/{info['pid']}/root"
                        break
            if root is None:
                raise DockerProblem("no running container to read user frr from")
            self._frr_ids = img.frr_ids_in(root)
        return self._frr_ids


def _inner_pid(host_pid: int) -> Optional[int]:
    """The pid in the innermost pid namespace (last field of NSpid in /proc/PID/status)."""
    try:
        with open(f"/proc/{host_pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None
