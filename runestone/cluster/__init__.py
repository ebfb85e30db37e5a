"""Scale-out: replicas that are one gateway, through Redis (the ``cluster`` config section).

Imported only when the config has a ``cluster`` section: a single process never
imports Redis.
"""

from __future__ import annotations

from runestone.cluster.cluster import Cluster, default_instance
from runestone.cluster.limits import SharedLease, SharedLimits
from runestone.cluster.link import Link, LinkState
from runestone.cluster.names import KeySpace
from runestone.cluster.registry import Member, Registry

__all__ = [
    "Cluster",
    "KeySpace",
    "Link",
    "LinkState",
    "Member",
    "Registry",
    "SharedLease",
    "SharedLimits",
    "default_instance",
]
