"""Topology description: the model (what exists) and the loader (YAML in, validated model out)."""
from .loader import TopologyError, load_topology, parse_topology
from .model import AS, Bridge, Endpoint, Fabric, Link, Server, Topology

__all__ = ["AS", "Bridge", "Endpoint", "Fabric", "Link", "Server", "Topology",
           "TopologyError", "load_topology", "parse_topology"]
