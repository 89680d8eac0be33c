"""Defaults of the balancing policy document: the value an agent uses for every optional
field a document omits.

This is the only place these numbers live. `skyfleet.policy.spec` builds the validator and
the exported JSON Schema from them, so `policies/schema.json` shows the same defaults the
agent applies. Most figures are Envoy's (locality, outlier detection, retry budget) or
Linkerd's (peak EWMA); each docstring says why.
"""

from __future__ import annotations

from typing import Final

KNOWN_CLOUDS: Final = ("aws", "azure", "gcp")
"""Clouds a document may name. A fixed list rather than any string, so a typo such as
`azrue` in `drained_clouds` is an error instead of a drain that silently does nothing."""

STRATEGIES: Final = (
    "round_robin",
    "random",
    "weighted",
    "least_loaded",
    "p2c",
    "peak_ewma",
    "adaptive",
)
"""Strategy names the balancer implements (`skyfleet.balancing`)."""

STRATEGY: Final = "p2c"
"""Capacity-weighted power of two choices: robust to stale gossiped load (Mitzenmacher),
unlike `least_loaded`, which herds on stale data."""

P2C_CHOICES: Final = 2
"""Candidates sampled per pick (d). d=2 gives the exponential improvement over random;
d=3 helps little more and moves more load onto the same few nodes when state is stale."""

P2C_CAPACITY_WEIGHTED: Final = True
"""Sample candidates in proportion to capacity and normalise cost by it: with unequal
capacities uniform P2C can overload the small nodes."""

PEAK_EWMA_DECAY_SECONDS: Final = 10.0
"""Linkerd/Finagle's decay window for the latency estimate."""

PEAK_EWMA_CHOICES: Final = 2
"""Peak EWMA picks the cheaper of two samples, as Linkerd does."""

ADAPTIVE_EXPLORATION: Final = 0.1
"""Share of picks the experimental adaptive strategy spends exploring."""

ADAPTIVE_DECAY_SECONDS: Final = 10.0
"""Memory of the adaptive strategy's observations, as for peak EWMA."""

LOCALITY_PREFER: Final = "zone"
"""Keep a task in the narrowest failure domain that has healthy capacity: same zone, then
region, then cloud, then anywhere. Cheapest and fastest while nothing is wrong."""

LOCALITY_LEVELS: Final = ("zone", "region", "cloud", "none")
"""Allowed values of `locality.prefer`, narrowest first; `none` ignores locality."""

SPILL_THRESHOLD_PERCENT: Final = 80.0
"""Utilisation of the preferred locality above which new tasks spill to the next level,
so a busy zone sheds load before its queues grow."""

OVERPROVISIONING_FACTOR: Final = 1.4
"""Envoy: a locality with healthy share h keeps min(1, h x 1.4) of its traffic, so losing
up to ~29% of a zone's hosts moves no traffic away from it."""

PANIC_THRESHOLD_PERCENT: Final = 50.0
"""Envoy: below this share of healthy hosts the balancer ignores health and spreads over
all hosts, rather than crushing the few left."""

MAX_ATTEMPTS: Final = 5
"""Envoy's cap on attempts of one task (the first try included)."""

MAX_ATTEMPTS_LIMIT: Final = 10
"""Upper bound a document may set: more attempts turn an outage into a retry storm."""

PER_ATTEMPT_TIMEOUT_SECONDS: Final = 60.0
"""Deadline of one attempt. Agent tasks run for seconds to minutes, far above an RPC."""

CROSS_CLOUD_FAILOVER: Final = True
"""Retries may leave the cloud of the first attempt: surviving a whole provider is the point
of Skyfleet."""

RETRY_BUDGET_PERCENT: Final = 20.0
"""Envoy: retries may add at most this share of the active requests."""

RETRY_BUDGET_MIN_CONCURRENT: Final = 3
"""Envoy: retries always allowed up to this many at once, so a quiet node can still retry."""

OUTLIER_DETECTION_ENABLED: Final = True

OUTLIER_INTERVAL_SECONDS: Final = 10.0
"""Envoy: how often ejections are re-evaluated."""

OUTLIER_BASE_EJECTION_SECONDS: Final = 30.0
"""Envoy: first ejection length; it grows with each repeated ejection of the same host."""

OUTLIER_MAX_EJECTION_PERCENT: Final = 100.0
"""Envoy's default is 10%, which would keep a failed cloud (a third of the fleet) in
rotation. Allowing 100% lets a whole cloud be ejected; the panic threshold is the guard
against ejecting everything."""

OUTLIER_CONSECUTIVE_FAILURES: Final = 5
"""Envoy: consecutive failed attempts that eject a host."""

SESSION_AFFINITIES: Final = ("none", "hash", "bounded_hash")
"""Allowed values of `sessions.affinity`: ignore sessions, plain consistent hashing, or
consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam)."""

SESSION_AFFINITY: Final = "none"
"""A session is only a hint until a policy asks for affinity: pinning a session's tasks to
one host trades balance for the host's warm state, an operator's choice per fleet."""

SESSION_LOAD_FACTOR: Final = 1.25
"""c of bounded loads: a host takes no more session tasks once its load reaches c x its
capacity's share of the load, the task being placed counted (brpc's default too). The
paper moves O(1/(c-1)^2) sessions per change in expectation, so a factor near 1 buys
balance with churn, the more so the larger the fleet; bench/session_affinity.py measures
both sides for 1.25 and 1.5."""

SESSION_VIRTUAL_NODES: Final = 160
"""Ring points of a host of average capacity (libketama's 160). A host's share of the ring
strays by about 1/sqrt(points) (~8 %): more points balance plain hashing better, and each
one is paid for when the ring is rebuilt on a change of the candidate set."""

SESSION_VIRTUAL_NODES_LIMIT: Final = 1000
"""Most points per host a document may ask for: 1000 x 100 hosts is already a 100,000
point ring to hash and sort at each membership change."""

CLOUD_WEIGHT: Final = 1.0
"""Share multiplier of a cloud's capacity; equal weights route by capacity alone."""

CLOUD_RELATIVE_COST: Final = 1.0
"""Cost of a unit of work in a cloud relative to the others; only ratios matter."""

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
"""Largest signed envelope an agent parses; a policy is a few kilobytes, so anything near
this is a mistake or an attack on the parser."""

MAX_DOCUMENT_DEPTH: Final = 32
"""Deepest nesting of arrays and objects an agent parses. A policy nests about six deep;
Python's JSON parser recurses per level and fails past about a thousand, so a deeper
document is refused before it reaches the parser."""

ADOPTION_MEMORY: Final = 256
"""Distinct (decision, document hash) pairs an adopter remembers to mark repeats, so an
older document gossiped every round is logged once, not every round."""
