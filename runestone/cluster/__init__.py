"""Scale-out: replicas that are one gateway, through Redis (the ``cluster`` config section).

Imported only when the config has a ``cluster`` section: a single process never
imports Redis.
"""

from __future__ import annotations

from runestone.cluster.circuits import SharedCircuit, SharedCircuits, SharedState
from runestone.cluster.cluster import Cluster, default_instance
from runestone.cluster.health import cluster_section, merge_providers
from runestone.cluster.limits import OfflineLease, SharedLease, SharedLimits
from runestone.cluster.link import Link, LinkState
from runestone.cluster.names import KeySpace
from runestone.cluster.registry import Member, Registry

__all__ = [
    "Cluster",
    "KeySpace",
    "Link",
    "LinkState",
    "Member",
    "OfflineLease",
    "Registry",
    "SharedCircuit",
    "SharedCircuits",
    "SharedLease",
    "SharedLimits",
    "SharedState",
    "cluster_section",
    "default_instance",
    "merge_providers",
]
