"""Provisioning: build (or remove) the part of a topology that lives on one server.

    from minet_sdn.topology import load_topology
    from minet_sdn.provision import build_plan, up, down

    topo = load_topology("topology.yaml")
    plan = build_plan(topo, "VM1")        # pure: what should exist on VM1
    report = up(plan)                     # make this machine (current netns, OvS via OVS_RUNDIR) match
    report = down(plan)                   # remove exactly what is ours

`up` raises ProvisionError (after rolling back what it created); `build_plan` raises
AddressingError (bad input) or ValueError (unknown server/backend).
"""
from .apply import ProvisionError, Provisioner, Report, down, up
from .plan import Plan, build_plan

__all__ = ["Plan", "ProvisionError", "Provisioner", "Report", "build_plan", "down", "up"]
