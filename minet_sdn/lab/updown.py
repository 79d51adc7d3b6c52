"""`lab up` and `lab down`.

lab_up(FILE)      emulated servers (servers.py), the controller in the mgmt namespace, then
                  `minet-provision --master` over SSH (provisioning.py), then wait until every BGP
                  session and route of every configured router is there (convergence.py). Again on
                  a lab that is up: restart what simply can be (repair), else a no-op.
lab_down(FILE)    provisioning --down over SSH (best effort), then remove exactly what lab.json lists.
remove_lab(FILE)  lab_down, then whatever it could not remove, under the lab's lock (tests, benches).
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from ..classroom.lab_hook import lab_doors_down, lab_doors_up
from ..messages import clip_line
from ..topology import Topology, names, validate
from . import LabError, Progress, paths, printing_progress, provisioning, quiet, servers
from .controller import start_controller, start_relay
from .convergence import bgp_converged, configured_routers, count_sessions, default_bgp_timeout, wait_bgp
from .effective import effective, load
from .networks import DEFAULT_MGMT_SUBNET
from .places import plan_nodes
from .sshd import start_sshd
from .state import LabState, lab_lock, topology_digest
from .system import netns_exists


def health(state: LabState) -> List[str]:
    """What is wrong with a lab that should be running (empty when all is well)."""
    problems = [f"namespace {ns} is gone" for ns in state.namespaces if not netns_exists(ns)]
    problems += [f"{p.name} (pid {p.pid}) is not running" for p in state.processes if not p.alive()]
    return problems


def repair(topo: Topology, state: LabState, progress: Progress) -> List[str]:
    """Restart what can simply be restarted: a dead sshd, controller or REST relay."""
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
        elif rec.name == "controller" and netns_exists(names.mgmt_ns(topo)):
            progress(f"restarting the controller (pid {rec.pid} is gone)")
            start_controller(topo, state, progress)
        elif rec.name == "relay":
            start_relay(topo, state, effective(state))
        else:
            continue
        repaired.append(rec.name)
    return repaired


def _summary(topo: Topology, state: LabState, reports: List[Dict[str, Any]], seconds: float,
             already: bool = False) -> Dict[str, Any]:
    up, total = count_sessions(reports)
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


def format_summary(s: Dict[str, Any]) -> str:
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


def lab_up(topo_path: str, *, mgmt_subnet: str = DEFAULT_MGMT_SUBNET, progress: Optional[Progress] = None,
           provision: bool = True, bgp_timeout: Optional[float] = None,
           keep_on_failure: bool = False, backend: str = "netns", image: Optional[str] = None) -> Dict[str, Any]:
    """Bring the lab of `topo_path` up (a no-op when it already is); returns the summary.

    `backend` is how provisioning makes the nodes: "netns" (named namespaces) or "docker"
    (containers of `image`, default $MINET_DOCKER_IMAGE, else minet-sdn/frr:<version>, built here when
    missing); a lab keeps the backend and image it was built with.

    On a failure before provisioning has finished, a lab this call started is removed again
    (unless keep_on_failure). BGP not converging in `bgp_timeout` raises LabError but keeps the lab.
    """
    progress = progress or printing_progress()
    t0 = time.monotonic()
    servers.check_host()
    topo = load(topo_path)
    problems = validate.problems(topo)       # what `minet validate` and minet-provision refuse
    if problems:
        raise LabError(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))
    with lab_lock(topo):
        state = LabState.load(topo)
        created = state is None
        if state is not None:
            if state.backend != backend:
                raise LabError(f"the lab {topo.name} is up with the {state.backend} "
                               f"backend; run `minet lab down {topo_path}` first to use {backend}")
            if state.topology_sha256 != topology_digest(topo_path):
                raise LabError(f"the lab {topo.name} is up with another version of {topo_path} "
                               f"(from {state.topology}); run `minet lab down` first")
            repaired = repair(topo, state, progress)
            problems = health(state)
            if problems:
                raise LabError(f"the lab {topo.name} is damaged ({problems[0]}); "
                               f"run `minet lab down {topo_path}` and up again")
            if state.phase == "up" and (state.provisioned or not provision):
                if provision:
                    lab_doors_up(topo, progress)         # students' doors (classroom/): repaired if down
                ok, reports = wait_bgp(topo, timeout=0) if provision else (True, [])
                progress(f"lab {topo.name} is already up; " + (f"restarted {', '.join(repaired)}"
                                                                 if repaired else "nothing to do"))
                return _summary(topo, state, reports, time.monotonic() - t0, already=True)
            progress(f"lab {topo.name}: resuming from phase {state.phase}")
        try:
            if state is None:
                progress(f"lab {topo.name}: {len(topo.servers)} servers, {len(topo.ases)} ASes, "
                         f"{len(topo.links)} links")
                provisioning.check_capacity(topo, progress, backend)
                state = servers.build_servers(topo_path, mgmt_subnet=mgmt_subnet, progress=progress).state
                state.backend = backend
                if backend == "docker":      # resolved here ($MINET_DOCKER_IMAGE does not cross SSH)
                    from ..provision.image import image_name
                    state.image = image_name(image)
                state.save()
            start_controller(topo, state, progress)
            if not provision:
                state.phase = "up"
                state.save()
                return _summary(topo, state, [], time.monotonic() - t0)
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
            lab_doors_up(topo, progress)                 # students' doors (classroom/), if the topology has any
        except BaseException:
            if created and state is not None and not keep_on_failure:
                progress("removing the half-built lab")
                _down(topo, state, progress, provisioned=state.phase == "provisioning")
            raise
        progress(f"waiting for BGP on {len(configured_routers(topo))} configured routers")
        if bgp_timeout is None:
            bgp_timeout = default_bgp_timeout(topo)
        ok, reports = wait_bgp(topo, timeout=bgp_timeout, progress=progress, routes=True)
        if not ok:
            up, total = count_sessions(reports)
            bad = [f"{r['router']}" for r in reports if not bgp_converged(r)]
            no_routes = [f"{r['router']}" for r in reports if r.get("routes_missing")]
            raise LabError(f"BGP did not converge within {bgp_timeout:g} s: {up}/{total} sessions "
                           f"established (not yet: {', '.join(bad[:5]) or 'none'}; routes missing on "
                           f"{len(no_routes)} routers{': ' + ', '.join(no_routes[:5]) if no_routes else ''}); "
                           f"the lab is kept: see `minet lab status {topo_path}`")
        state.phase = "up"
        state.up_seconds = round(time.monotonic() - t0, 1)
        state.save()
        return _summary(topo, state, reports, time.monotonic() - t0)


def _down(topo: Topology, state: LabState, progress: Progress, provisioned: bool) -> List[str]:
    problems: List[str] = lab_doors_down(topo)         # students' sessions end before their devices go
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
    nodes = [ns for server in topo.servers for ns, _ in plan_nodes(topo, server).values()]
    leftovers = [ns for ns in nodes if netns_exists(ns)]
    if state.backend == "docker":
        problems += provisioning.remove_containers(topo, state, progress)
    progress("stopping the controller, sshd and Open vSwitch; deleting the lab's namespaces")
    problems += servers.teardown(topo, state, progress)
    for ns in leftovers:
        if netns_exists(ns):
            problems.append(f"node namespace {ns} is still there (left by provisioning)")
    return problems


def lab_down(topo_path: str, *, progress: Optional[Progress] = None) -> List[str]:
    """Remove the lab of `topo_path`; returns problems met (the rest is removed regardless)."""
    progress = progress or printing_progress()
    servers.check_host()
    topo = load(topo_path)
    provisioning.forget_failure_logs(topo)        # copies kept by a failed `up`
    with lab_lock(topo):
        state = LabState.load(topo)
        if state is None:
            progress(f"no lab of {topo.name} here; nothing to do")
            return []
        provisioned = state.provisioned or state.phase == "provisioning"
        try:                 # what the lab was built from, even if the user's file changed since
            topo = effective(state)
        except LabError:
            pass
        problems = _down(topo, state, progress, provisioned)
        progress(f"lab {topo.name} is down" + (f" with {len(problems)} problem(s)" if problems else ""))
        return problems


def remove_lab(topo_path: str, progress: Progress = quiet) -> List[str]:
    """`lab down`, then whatever it could not remove (a lab that failed half way up, or a down that
    failed half way) by what lab.json still records, under the lab's lock; the problems met.
    For the `finally` of tests and benches: afterwards no state of the lab is left behind."""
    topo = load(topo_path)
    problems: List[str] = []
    try:
        problems = lab_down(topo_path, progress=progress)
    finally:
        if LabState.load(topo) is not None:
            with lab_lock(topo):
                problems += servers.teardown(topo)
    return problems
