"""Discrete-event simulation: the same protocol cores the agents run, on virtual time and
an in-memory network with delay, loss and partitions. Tests use it for determinism;
bench/ uses it to plan fleets of 1,000-10,000 nodes."""

from skyfleet.sim.cluster import SimCluster
from skyfleet.sim.network import SimNetwork

__all__ = ["SimCluster", "SimNetwork"]
