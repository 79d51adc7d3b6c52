"""The lab as one object (containerlab's CLab, Mininet's Mininet): a topology file's lab on this
machine, holding what its operations share (the topology, its file, lab.json, the effective
topology, the backend, the nodes' places, the progress callback) instead of passing them along.

    lab = Lab("topologies/demo.yaml")
    lab.up()                     # emulated servers, controller, minet-provision --master, BGP
    lab.status()                 # text, or lab.status(json=True)
    lab.exec("1.ZURI", ["vtysh", "-c", "show bgp summary"])
    lab.places()["1.ZURI.host"].exec_prefix()
    lab.down()

up()      emulated servers (servers.py), the controller in the mgmt namespace (controller.py), then
          `minet-provision --master` over SSH (provisioning.py), then wait until every BGP session
          and route of every configured router is there (convergence.py). Again on a lab that is
          up: restart what simply can be (repair), else a no-op.
down()    provisioning --down over SSH (best effort), then remove exactly what lab.json lists.
remove()  down(), then whatever it could not remove, under the lab's lock (tests, benches).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json as jsonlib
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from ..classroom.lab_hook import lab_doors_down, lab_doors_up
from ..messages import clip_line
from ..topology import Topology, names, validate
from ..topology.places import NodePlace, Places
from . import LabError, Progress, convergence, paths, printing_progress, provisioning, quiet, servers
from . import guard
from . import repair as repair_mod
from .controller import call_controller, start_controller, start_relay
from .effective import load
from .networks import DEFAULT_MGMT_SUBNET
from .places import lab_places, resolve_node
from .sshd import start_sshd
from .state import LabState, lab_lock, topology_digest
from .system import netns_exists


class Lab:
    """The lab of the topology file `topo_path` (LabError when the file does not load)."""

    def __init__(self, topo_path: str, progress: Optional[Progress] = None):
        self.topo_path = topo_path
        self.topo: Topology = load(topo_path)          # the user's file as it is now
        self.progress: Progress = progress or printing_progress()
        self._state: Optional[LabState] = None
        self._read = False                 # lab.json is read when first needed, not here
        self._effective: Optional[Topology] = None

    # ---- what the lab is -------------------------------------------------------------------
    @property
    def state(self) -> Optional[LabState]:
        """lab.json as last read (None when no lab of this topology's instance exists)."""
        return self._state if self._read else self.reload()

    @state.setter
    def state(self, state: Optional[LabState]) -> None:
        self._state, self._read, self._effective = state, True, None

    def reload(self) -> Optional[LabState]:
        """Read lab.json again (LabError when it is unreadable)."""
        self.state = LabState.load(self.topo)
        return self._state

    def require(self) -> LabState:
        """lab.json; LabError saying how to start the lab when there is none."""
        state = self.state if self.state is not None else self.reload()
        if state is None:
            raise LabError(f"no lab of {self.topo_path} is up (start it with `minet lab up {self.topo_path}`)")
        return state

    @property
    def name(self) -> str:
        return self.topo.name

    @property
    def backend(self) -> str:
        """How the nodes are made ("netns" or "docker"), as `up` recorded it."""
        return self.state.backend if self.state is not None else "netns"

    @property
    def effective(self) -> Topology:
        """What the lab was built from (controller and ssh on its mgmt network), even if the user's
        file changed since; the user's topology while no lab exists."""
        if self._effective is None:
            self._effective = load(self.state.effective_topology) if self.state is not None else self.topo
        return self._effective

    @property
    def state_dir(self) -> str:
        return paths.state_dir(self.topo)

    def places(self) -> Places:
        """Every node's place (topology/places.py with each emulated server's state root)."""
        return lab_places(self.topo, self.backend)

    def place(self, node: str) -> NodePlace:
        """A node's place by id, or by a router's bare name when it is unique; LabError if none."""
        place = resolve_node(self.topo, node, self.places())[2]
        if place is None:
            raise LabError(f"{node} is a server or network of the lab, not a node")
        return place

    def resolve(self, node: str) -> Tuple[str, Dict[str, str], Optional[NodePlace]]:
        """(namespace, extra environment, place or None) of any node name `minet exec` takes:
        mgmt, underlay, a server, or a node (places.resolve_node)."""
        return resolve_node(self.topo, node, self.places())

    # ---- running things in it --------------------------------------------------------------
    def exec(self, node: str, argv: Sequence[str]) -> int:
        """Run `argv` in a node with the caller's stdin/stdout; its exit code. For vtysh in a
        router, `--vty_socket` and `--config_dir <router dir>` are added."""
        note = self.check_file(self.require())       # another file of the same name: refused
        if not argv:
            raise LabError("no command given (minet exec FILE NODE -- CMD ...)")
        if note:                  # the same file edited since `lab up`: its nodes as they run
            print(f"minet exec: note: {note}", file=sys.stderr)
            built = self._built_from()
            ns, env, place = resolve_node(built, node, lab_places(built, self.backend))
        else:
            ns, env, place = self.resolve(node)
        argv = place.user_argv(argv) if place is not None else list(argv)
        if place is not None and place.backend == "docker":        # the command runs in the container
            tty = sys.stdin.isatty() and sys.stdout.isatty()
            return subprocess.call(place.exec_prefix(interactive=True, tty=tty) + argv)
        if not netns_exists(ns):
            raise LabError(f"node {node}: namespace {ns} does not exist (is the lab provisioned?)")
        if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            raise LabError(f"{argv[0]}: command not found")
        return subprocess.call(names.exec_prefix("netns", ns, env=env) + argv)

    def vtysh(self, router: str, command: str, timeout: float = 10) -> Optional[str]:
        """A `show` command's output on `router`; None when it did not answer."""
        try:
            place = self.places().router(router)
        except KeyError:
            raise LabError(f"no router {router} in {self.name}") from None
        return convergence.vtysh(place, command, timeout)

    def rest_call(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Tuple[int, Any]:
        """(HTTP status, decoded answer) of `METHOD PATH` on the lab's controller (LabError when
        there is no lab or the controller does not answer)."""
        self.require()
        return call_controller(self.topo, self.effective, method, path, body, timeout)

    def failed_peers(self) -> FrozenSet[str]:
        """Addresses of both ends of every link an operator failed (its sessions are not expected)."""
        return convergence.failed_peers(self._built_from(), paths.state_file(self.topo, CONTROLLER_STATE))

    def wait_bgp(self, timeout: float = convergence.BGP_TIMEOUT, interval: float = 1.0,
                 routes: bool = False) -> Tuple[bool, List[Dict[str, Any]]]:
        """convergence.wait_bgp on this lab, with its progress callback."""
        return convergence.wait_bgp(self.topo, timeout=timeout, progress=self.progress, interval=interval,
                                    routes=routes, places=self.places(), down_peers=self.failed_peers())

    # ---- up --------------------------------------------------------------------------------
    def health(self) -> List[str]:
        """What is wrong with a lab that should be running (empty when all is well): its own
        namespaces and processes, then what provisioning built (built_problems)."""
        return self._own_problems() + self.built_problems()

    def _own_problems(self) -> List[str]:
        """The lab's own namespaces and processes (lab.json) that are gone."""
        state = self.require()
        problems = [f"namespace {ns} is gone" for ns in state.namespaces if not netns_exists(ns)]
        return problems + [f"{p.name} (pid {p.pid}) is not running" for p in state.processes if not p.alive()]

    def built_problems(self) -> List[str]:
        """What provisioning built and is gone (lab/repair.py): a router's dead FRR daemons, a
        deleted remote bridge. Empty until the lab is provisioned; `up` repairs these in place."""
        state = self.require()
        if not state.provisioned:
            return []
        topo, places = self._built_from(), self.places()

        def ovs_runs(server: str) -> bool:
            return all(rec is not None and rec.alive() for rec in
                       (state.process(f"{server}/ovsdb-server"), state.process(f"{server}/ovs-vswitchd")))
        servers_up = [s for s in state.servers if netns_exists(names.server_ns(topo, s))]
        return repair_mod.problems(topo, servers_up, places.root, state.backend, ovs_runs)

    def repair(self) -> List[str]:
        """Restart what can simply be restarted: a dead sshd, ovs-vswitchd, controller or REST relay."""
        topo, state, progress = self.topo, self.require(), self.progress
        repaired: List[str] = []
        for rec in list(state.processes):
            if rec.alive():
                continue
            if rec.name.endswith("/sshd"):
                server = rec.name.split("/", 1)[0]
                if not (netns_exists(names.server_ns(topo, server)) and server in state.servers):
                    continue
                progress(f"restarting sshd of {server} (pid {rec.pid} is gone)")
                start_sshd(topo, server, state, state.servers[server].mgmt_ip)
            elif rec.name.endswith("/ovs-vswitchd"):
                server = rec.name.split("/", 1)[0]
                db = state.process(f"{server}/ovsdb-server")
                if not (server in state.servers and netns_exists(names.server_ns(topo, server))
                        and db is not None and db.alive()):
                    continue
                progress(f"restarting ovs-vswitchd of {server} (pid {rec.pid} is gone)")
                servers.restart_vswitchd(topo, server, state)
            elif rec.name == "controller" and netns_exists(names.mgmt_ns(topo)):
                progress(f"restarting the controller (pid {rec.pid} is gone)")
                start_controller(topo, state, progress, self.effective)
            elif rec.name == "relay":
                start_relay(topo, state, self.effective)
            else:
                continue
            repaired.append(rec.name)
        return repaired

    def up(self, *, mgmt_subnet: str = DEFAULT_MGMT_SUBNET, provision: bool = True,
           bgp_timeout: Optional[float] = None, keep_on_failure: bool = False, backend: str = "netns",
           image: Optional[str] = None) -> Dict[str, Any]:
        """Bring the lab up (a no-op when it already is); returns the summary (format_summary).

        `backend` is how provisioning makes the nodes: "netns" (named namespaces) or "docker"
        (containers of `image`, default $MINET_DOCKER_IMAGE, else minet-sdn/frr:<version>, built here
        when missing); a lab keeps the backend and image it was built with.

        On a failure before provisioning has finished, a lab this call started is removed again
        (unless keep_on_failure). BGP not converging in `bgp_timeout` raises LabError but keeps the lab.
        """
        topo, topo_path, progress = self.topo, self.topo_path, self.progress
        t0 = time.monotonic()
        servers.check_host()
        problems = validate.problems(topo)       # what `minet validate` and minet-provision refuse
        if problems:
            raise LabError(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
        with lab_lock(topo):
            state = self.reload()
            created = state is None
            if state is not None:
                if state.backend != backend:
                    raise LabError(f"the lab {topo.name} is up with the {state.backend} "
                                   f"backend; run `minet lab down {topo_path}` first to use {backend}")
                if state.topology_sha256 != topology_digest(topo_path):
                    self.check_file(state)              # another file of the same name: refused there
                    from .changes import differences
                    diff = differences(self._built_from(), topo)
                    raise LabError(f"the lab {topo.name} runs an older version of {topo_path} ("
                                   + ("; ".join(diff) if diff else "no change to the network, only the text")
                                   + f"); a running lab is not changed in place: run `minet lab down "
                                     f"{topo_path}`, then up, to apply it")
                repaired = self.repair()
                problems = self._own_problems()
                if problems:
                    raise LabError(f"the lab {topo.name} is damaged ({problems[0]}); "
                                   f"run `minet lab down {topo_path}` and up again")
                built = self.built_problems() if provision and state.phase == "up" else []
                if built:
                    return self._repair_built(built, repaired, t0)
                if state.phase == "up" and (state.provisioned or not provision):
                    if provision:
                        lab_doors_up(topo, self.places(), progress)   # students' doors: repaired if down
                    ok, reports = (convergence.wait_bgp(topo, timeout=0, places=self.places(),
                                                        down_peers=self.failed_peers())
                                   if provision else (True, []))
                    progress(f"lab {topo.name} is already up; " + (f"restarted {', '.join(repaired)}"
                                                                     if repaired else "nothing to do"))
                    return self._summary(reports, time.monotonic() - t0, already=True)
                progress(f"lab {topo.name}: resuming from phase {state.phase}")
            try:
                if state is None:
                    progress(f"lab {topo.name}: {len(topo.servers)} servers, {len(topo.ases)} ASes, "
                             f"{len(topo.links)} links")
                    provisioning.check_capacity(topo, progress, backend)
                    for line in validate.scale_warnings(topo, validate.written_keys(topo_path, "fabric"),
                                                        os.cpu_count() or 1):
                        progress(f"warning: {line}")
                    state = self.state = servers.build_servers(topo_path, mgmt_subnet=mgmt_subnet,
                                                               progress=progress).state
                    state.backend = backend
                    if backend == "docker":      # resolved here ($MINET_DOCKER_IMAGE does not cross SSH)
                        from ..provision.image import image_name
                        state.image = image_name(image)
                    state.save()
                    restore_link_failures(topo, progress)
                start_controller(topo, state, progress, self.effective)
                if not provision:
                    state.phase = "up"
                    state.save()
                    return self._summary([], time.monotonic() - t0)
                if state.backend == "docker":
                    provisioning.ensure_image(state, progress)
                state.phase = "provisioning"
                state.save()
                progress("provisioning every server over SSH from the mgmt namespace (minet-provision --master)")
                rc, last = provisioning.run_provision(topo, state, progress)
                if rc != 0:
                    last = provisioning.keep_failure_logs(topo, last)
                    raise LabError(f"provisioning failed (exit {rc}): {clip_line(last)} "
                                   f"(log: {paths.state_file(topo, 'provision.log')})")
                state.phase = "provisioned"
                state.provisioned = True
                state.save()
                lab_doors_up(topo, self.places(), progress, fresh=True)   # students' doors (classroom/), if any
            except BaseException:
                if created and state is not None and not keep_on_failure:
                    progress("removing the half-built lab")
                    self._down(provisioned=state.phase == "provisioning")
                raise
            progress(f"waiting for BGP on {len(convergence.configured_routers(topo))} configured routers")
            if bgp_timeout is None:
                bgp_timeout = convergence.default_bgp_timeout(topo)
            try:
                ok, reports = convergence.wait_bgp(topo, timeout=bgp_timeout, progress=progress, routes=True,
                                                   places=self.places(), down_peers=self.failed_peers())
            except KeyboardInterrupt:     # provisioned: nothing half-built to roll back, so say so
                progress(f"interrupted while waiting for BGP: the lab is kept (see `minet lab status "
                         f"{topo_path}`; `minet lab down {topo_path}` removes it)")
                raise
            if not ok:
                up, total = convergence.count_sessions(reports)
                bad = [f"{r['router']}" for r in reports if not convergence.bgp_converged(r)]
                no_routes = [f"{r['router']}" for r in reports if r.get("routes_missing")]
                raise LabError(f"BGP did not converge within {bgp_timeout:g} s: {up}/{total} sessions "
                               f"established (not yet: {', '.join(bad[:5]) or 'none'}; routes missing on "
                               f"{len(no_routes)} routers{': ' + ', '.join(no_routes[:5]) if no_routes else ''}); "
                               f"the lab is kept: see `minet lab status {topo_path}`")
            state.phase = "up"
            state.up_seconds = round(time.monotonic() - t0, 1)
            state.save()
            return self._summary(reports, time.monotonic() - t0)

    def _repair_built(self, built: List[str], repaired: List[str], t0: float) -> Dict[str, Any]:
        """Provisioning again, in place, for what it built and is gone (built_problems): it is
        idempotent, so it makes only what is missing; then BGP as after a fresh `up`."""
        topo, state, progress = self.topo, self.require(), self.progress
        progress(f"lab {topo.name}: repairing in place: {'; '.join(built[:3])}"
                 + (f" (and {len(built) - 3} more)" if len(built) > 3 else ""))
        rc, last = provisioning.run_provision(topo, state, progress)
        if rc != 0:
            raise LabError(f"repairing the lab by provisioning failed (exit {rc}): {clip_line(last)} "
                           f"(log: {paths.state_file(topo, 'provision.log')})")
        lab_doors_up(topo, self.places(), progress)          # students' doors: repaired if down
        left = self.built_problems()
        if left:
            raise LabError(f"the lab {topo.name} is still damaged after provisioning ({left[0]}); "
                           f"run `minet lab down {self.topo_path}` and up again")
        ok, reports = convergence.wait_bgp(topo, timeout=convergence.default_bgp_timeout(topo), progress=progress,
                                           routes=True, places=self.places(), down_peers=self.failed_peers())
        if not ok:
            up, total = convergence.count_sessions(reports)
            raise LabError(f"repaired, but BGP did not converge: {up}/{total} sessions established; "
                           f"see `minet lab status {self.topo_path}`")
        progress(f"lab {topo.name} is already up; repaired " + ", ".join(repaired + built))
        return self._summary(reports, time.monotonic() - t0, already=True)

    def _summary(self, reports: List[Dict[str, Any]], seconds: float, already: bool = False) -> Dict[str, Any]:
        topo, state = self.topo, self.require()
        up, total = convergence.count_sessions(reports)
        return {
            "name": topo.name, "already_up": already, "seconds": round(seconds, 1),
            "backend": state.backend,
            "servers": {s: {"ns": v.ns, "mgmt_ip": v.mgmt_ip, "underlay_ip": v.underlay_ip}
                        for s, v in state.servers.items()},
            "ases": len(topo.ases), "configured_ases": sum(1 for a in topo.ases.values() if a.configure),
            "routers": len(topo.routers), "links": len(topo.links), "remote_links": len(topo.remote_links),
            "bgp_sessions": {"established": up, "expected": total},
            "controller": state.controller.rest if state.controller else None,
            "rest_relay": state.rest_relay,
            "state_dir": paths.state_dir(topo),
        }

    # ---- down ------------------------------------------------------------------------------
    def _down(self, provisioned: bool) -> List[str]:
        """Unprovision (when provisioned), then remove what lab.json lists; the problems met."""
        state, progress = self.require(), self.progress
        topo = self._built_from()
        problems: List[str] = lab_doors_down(topo, lab_places(topo, state.backend))   # before the devices go
        if provisioned:
            sshd_ok = all(p.alive() for p in state.processes if p.name.endswith("/sshd"))
            rc, last = 1, "sshd of some server is not running"
            if sshd_ok:
                progress("unprovisioning every server over SSH (minet-provision --master --down)")
                rc, last = provisioning.run_provision(topo, state, progress, down=True, silence=300)
            if rc != 0:
                progress(f"provisioning --down over SSH failed ({last}); unprovisioning each server locally")
                for server in state.servers:
                    if not netns_exists(names.server_ns(topo, server)):
                        continue
                    rc, last = provisioning.provision_down_locally(topo, state, server)
                    if rc != 0:
                        problems.append(f"provisioning --down of {server} failed (exit {rc}): {last}")
        keep_link_failures(topo, progress)
        leftovers = [p.ns for p in lab_places(topo, state.backend).values() if netns_exists(p.ns)]
        if state.backend == "docker":
            problems += provisioning.remove_containers(topo, state, progress)
        progress("stopping the controller, sshd and Open vSwitch; deleting the lab's namespaces")
        problems += servers.teardown(topo, state, progress)
        for ns in leftovers:
            if netns_exists(ns):
                problems.append(f"node namespace {ns} is still there (left by provisioning)")
        return problems

    def check_file(self, state: LabState) -> Optional[str]:
        """None when the file is what the lab was built from; a note when that same file changed
        since (commands then show and act on the version that runs); LabError when it is another
        file with the same `name:` (it must not act on a lab it did not build): guard.py."""
        return guard.check_file(self.topo_path, state, self.name)

    def _built_from(self) -> Topology:
        """The effective topology when it still loads, else the user's (same instance name)."""
        try:
            return self.effective
        except LabError:
            return self.topo

    def down(self) -> List[str]:
        """Remove the lab; returns problems met (the rest is removed regardless)."""
        servers.check_host()
        provisioning.forget_failure_logs(self.topo)        # copies kept by a failed `up`
        with lab_lock(self.topo):
            state = self.reload()
            if state is None:
                self.progress(f"no lab of {self.name} here; nothing to do")
                return []
            self.check_file(state)          # removes what lab.json records, but only for its own file
            problems = self._down(state.provisioned or state.phase == "provisioning")
            self.progress(f"lab {self._built_from().name} is down"
                          + (f" with {len(problems)} problem(s)" if problems else ""))
            self.state = None
            return problems

    def remove(self) -> List[str]:
        """down(), then whatever it could not remove (a lab that failed half way up, or a down that
        failed half way) by what lab.json still records, under the lab's lock; the problems met.
        For the `finally` of tests and benches: afterwards no state of the lab is left behind."""
        problems: List[str] = []
        try:
            problems = self.down()
        finally:
            if LabState.load(self.topo) is not None:
                with lab_lock(self.topo):
                    problems += servers.teardown(self.topo)
            with contextlib.suppress(OSError):             # nothing of the lab is left behind
                os.unlink(paths.kept_link_failures(self.topo))
            self.state = None
        return problems

    # ---- status ----------------------------------------------------------------------------
    def status(self, json: bool = False) -> Any:
        """The lab's nodes, addresses, daemons, links as the controller sees them, BGP sessions,
        shaped links and what is wrong: a dict (json=True) or text."""
        state = self.require()
        note = self.check_file(state)
        topo = self._built_from() if note else self.topo      # the links as they run

        def alive(name: str) -> Optional[bool]:
            rec = state.process(name)
            return rec.alive() if rec is not None else None

        controller = dataclasses.asdict(state.controller) if state.controller else {}
        status: Dict[str, Any] = {
            "name": topo.name, "phase": state.phase, "state_dir": paths.state_dir(topo),
            "backend": state.backend,
            "topology": state.topology, "effective_topology": state.effective_topology,
            "mgmt": {"ns": names.mgmt_ns(topo), "ip": state.mgmt.ip, "subnet": state.mgmt_subnet,
                     "controller": {"alive": alive("controller"), **controller},
                     "rest_relay": state.rest_relay},
            "servers": {}, "links": [], "bgp": [], "problems": self.health(),
            "notes": [note] if note else [],
        }
        for name, srv in state.servers.items():
            status["servers"][name] = {
                "ns": srv.ns, "mgmt_ip": srv.mgmt_ip, "underlay_ip": srv.underlay_ip,
                "ssh": srv.ssh, "ovs_dir": srv.dir,
                "ovsdb": alive(f"{name}/ovsdb-server"), "vswitchd": alive(f"{name}/ovs-vswitchd"),
                "sshd": alive(f"{name}/sshd"),
                "routers": [r for r, as_ in topo.routers.items() if as_.server == name]}
        ctrl_links: Dict[int, Dict[str, Any]] = {}
        try:
            code, body = self.rest_call("GET", "/v1/links", timeout=3)
            if code == 200:
                items = body.get("links", body) if isinstance(body, dict) else body
                ctrl_links = {int(l["id"]): l for l in items if isinstance(l, dict) and "id" in l}
            else:
                status["problems"].append(f"controller answered {code} to GET /v1/links")
        except (LabError, ValueError) as exc:
            status["problems"].append(str(exc))
        for link in topo.links:
            c = ctrl_links.get(link.id, {})
            status["links"].append({
                "id": link.id, "a": link.a.router, "b": link.b.router, "rel": link.rel,
                "servers": list(link.servers()), "remote": link.remote,
                "state": c.get("state"), "tunnel_live": c.get("tunnel_live"),
                "tunnel_flaps": c.get("tunnel_flaps")})
        if state.provisioned:
            places = self.places()
            down = self.failed_peers()
            status["bgp"] = [convergence.bgp_sessions(topo, r, places, down) for r in convergence.configured_routers(topo)]
        status["shaping"] = self._shaping_rows()
        if json:
            return status
        return format_status(status)

    def _shaping_rows(self) -> List[Dict[str, Any]]:
        """Shaped links: configured vs the qdiscs their router ends carry (provision/shaping.py)."""
        from ..provision import shaping
        from ..provision.plan import build_plan
        topo, places = self.topo, self.places()

        def read(node: str, ifname: str) -> Optional[List[Dict[str, Any]]]:
            place = places.get(node)
            if place is None:
                return None
            try:
                res = subprocess.run(place.exec_prefix() + ["tc", "-j", "qdisc", "show", "dev", ifname],
                                     capture_output=True, text=True, timeout=10)
                return jsonlib.loads(res.stdout) if res.returncode == 0 else None
            except (OSError, subprocess.TimeoutExpired, ValueError):
                return None
        return shaping.lab_rows(topo, lambda s: build_plan(topo, s, root=places.root(s)), read)


CONTROLLER_STATE = "controller-state.json"


def keep_link_failures(topo: Topology, progress: Progress) -> None:
    """Before the state directory goes: the links an operator failed, as the controller keeps them
    (each by its endpoints, apps/remote_links.py), to the file the next `up` starts it with."""
    src, dst = paths.state_file(topo, CONTROLLER_STATE), paths.kept_link_failures(topo)
    try:
        with open(src, encoding="utf-8") as fh:
            data = jsonlib.load(fh)
    except (OSError, ValueError):
        return
    failed = data.get("failed") if isinstance(data, dict) else None
    if not failed or not isinstance(failed, list):
        with contextlib.suppress(OSError):
            os.unlink(dst)                      # restored since: an older copy must not come back
        return
    paths.write_atomic(dst, jsonlib.dumps({"topology": topo.name, "failed": failed}) + "\n", mode=0o600)
    ids = data.get("failed_links") or []
    progress(f"kept {len(failed)} link failure(s) made by an operator"
             + (f" (links {', '.join(str(i) for i in ids)})" if ids else "") + " for the next `lab up`")


def restore_link_failures(topo: Topology, progress: Progress) -> None:
    """A new lab's controller starts with the failures `down` kept (it fails those links again
    as their bridges connect); the kept copy is consumed."""
    src = paths.kept_link_failures(topo)
    if not os.path.exists(src):
        return
    dst = paths.state_file(topo, CONTROLLER_STATE)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o600)
    os.unlink(src)
    progress(f"links failed by an operator before the last `lab down` stay failed ({src})")


def format_summary(s: Dict[str, Any]) -> str:
    """`Lab.up()`'s summary as the text `minet lab up` prints."""
    lines = [f"lab {s['name']} is up" + (" (already was)" if s["already_up"] else f" in {s['seconds']:.1f} s")]
    for name, v in s["servers"].items():
        lines.append(f"  server {name:<8} ns {v['ns']:<14} mgmt {v['mgmt_ip']:<15} underlay {v['underlay_ip']}")
    lines.append(f"  {s['ases']} ASes ({s['configured_ases']} configured), {s['routers']} routers, "
                 f"{s['links']} links ({s['remote_links']} remote)")
    lines.append(f"  BGP sessions established: {s['bgp_sessions']['established']}/{s['bgp_sessions']['expected']}")
    if s.get("controller"):
        lines.append(f"  controller REST {s['controller']} (from this host: {s.get('rest_relay')})")
    lines.append(f"  state {s['state_dir']}")
    return "\n".join(lines)


def flap_note(flaps: Optional[Dict[str, Any]]) -> str:
    """What a link's row says of its tunnel's BFD history (core/damping.py via /v1/links)."""
    if not flaps or not flaps.get("bfd_transitions"):
        return ""
    note = f", {flaps['bfd_transitions']} BFD transitions"
    if flaps.get("held"):
        return note + ": FLAPPING, a BFD-down is held before it fails the link"
    if flaps.get("flapping"):
        return note + ": FLAPPING (short BFD-downs held, not failing the link)"
    return note


def format_status(st: Dict[str, Any]) -> str:
    """`Lab.status(json=True)` as the text `minet lab status` prints."""
    out = [f"lab {st['name']}: {st['phase']}  (nodes: {st.get('backend', 'netns')}, state {st['state_dir']})"]
    m = st["mgmt"]
    ctl = m["controller"]
    out.append(f"  mgmt       ns {m['ns']:<14} {m['ip']} ({m['subnet']})  controller "
               f"{'running' if ctl.get('alive') else 'NOT running'} {ctl.get('rest', '')}"
               f"  relay {m.get('rest_relay') or '-'}")
    for name, s in st["servers"].items():
        daemons = ", ".join(f"{d} {'ok' if s[d] else 'DOWN'}" for d in ("ovsdb", "vswitchd", "sshd"))
        out.append(f"  server {name:<6} ns {s['ns']:<14} mgmt {s['mgmt_ip']:<12} underlay "
                   f"{s['underlay_ip']:<12} {daemons}; routers {' '.join(s['routers'])}")
    out.append("  links:")
    for l in st["links"]:
        where = "-".join(l["servers"]) if l["remote"] else f"local {l['servers'][0]}"
        tunnel = "" if l["tunnel_live"] is None else ("  tunnel live" if l["tunnel_live"] else "  tunnel DOWN")
        tunnel += flap_note(l.get("tunnel_flaps"))
        out.append(f"    {l['id']:>3} {l['a']:<12} {l['b']:<12} {l['rel']:<9} {where:<10} "
                   f"{l['state'] or '?'}{tunnel}")
    if st["bgp"]:
        out.append("  BGP:")
        for r in st["bgp"]:
            if not r["reachable"]:
                out.append(f"    {r['router']:<12} (vtysh does not answer)")
                continue
            sess = "  ".join(f"{s['peer']} AS{s['remote_as']} {s['state']}" for s in r["sessions"])
            miss = f"  missing: {' '.join(r['missing'])}" if r["missing"] else ""
            out.append(f"    {r['router']:<12} {sess}{miss}")
    if st.get("shaping"):
        out.append("  shaped links (configured -> what each end carries):")
        for r in st["shaping"]:
            ends = "; ".join(f"{k} {v}" for k, v in r["ends"].items())
            out.append(f"    {r['link']:<16} {r['configured']:<24} {ends}"
                       + ("" if r["delay_applied"] else "  (delay NOT applied)"))
    for n in st.get("notes", []):
        out.append(f"  note: {n}")
    for p in st["problems"]:
        out.append(f"  problem: {p}")
    return "\n".join(out)
