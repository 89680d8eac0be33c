"""The balancing policy document, written as data.

`POLICY_SPEC` is the one description of the format: `skyfleet.policy.model` validates with
it and exports it as JSON Schema (`policies/schema.json`). Defaults come from
`skyfleet.config.policy_defaults`; cross-field rules that JSON Schema cannot say (a drain
that leaves no cloud, a routing rule that can never match) live in
`skyfleet.policy.consistency`.
"""

from __future__ import annotations

from typing import Final

from skyfleet.config import policy_defaults as d
from skyfleet.policy.fields import (
    Boolean,
    Choice,
    Integer,
    KeyedRecords,
    ListOf,
    Number,
    Prop,
    Record,
    Tagged,
    Text,
)

MAX_VERSION: Final = 2**53 - 1
MAX_REVOKED: Final = 10_000
"""Revoked serials a policy may list: ~0.4 MB of a document's size limit at most."""
"""Largest integer every JSON implementation reads exactly."""

_PERCENT = Number(0.0, 100.0)
_SECONDS = Number(0.0, 86400.0, exclusive_minimum=True)
_CLOUD = Choice(d.KNOWN_CLOUDS)
_REGION = Text(
    max_length=63,
    min_length=1,
    pattern=r"[a-z][a-z0-9-]*",
    hint="a region name (lowercase letters, digits, '-')",
)
_TASK_KIND = Text(
    max_length=128,
    min_length=1,
    pattern=r"(?:[A-Za-z0-9][A-Za-z0-9_.:/-]*)?\*?",
    hint="a task kind, optionally ending in '*' to match every kind with that prefix",
)

_CHOICES = Prop(Integer(2, 5), "Candidates sampled per pick (d).", d.P2C_CHOICES)

STRATEGY_PARAMS: Final = {
    "round_robin": Record({}),
    "random": Record({}),
    "weighted": Record({}),
    "least_loaded": Record({}),
    "p2c": Record(
        {
            "choices": _CHOICES,
            "capacity_weighted": Prop(
                Boolean(),
                "Sample in proportion to capacity and normalise load by it.",
                d.P2C_CAPACITY_WEIGHTED,
            ),
        }
    ),
    "peak_ewma": Record(
        {
            "decay_seconds": Prop(
                Number(0.0, 3600.0, exclusive_minimum=True),
                "Decay window of the latency estimate.",
                d.PEAK_EWMA_DECAY_SECONDS,
            ),
            "choices": Prop(Integer(2, 5), "Candidates compared per pick.", d.PEAK_EWMA_CHOICES),
        }
    ),
    "adaptive": Record(
        {
            "exploration": Prop(
                Number(0.0, 1.0), "Share of picks spent exploring.", d.ADAPTIVE_EXPLORATION
            ),
            "decay_seconds": Prop(
                Number(0.0, 3600.0, exclusive_minimum=True),
                "Memory of past observations.",
                d.ADAPTIVE_DECAY_SECONDS,
            ),
        }
    ),
}

STRATEGY_DESCRIPTIONS: Final = {
    "round_robin": "Each peer in turn; ignores load and capacity.",
    "random": "A uniformly random peer.",
    "weighted": "Random in proportion to capacity x cloud weight.",
    "least_loaded": "The peer with the lowest reported load; herds on stale load data.",
    "p2c": "Power of two choices: the less loaded of d capacity-weighted samples.",
    "peak_ewma": "Cheaper of d samples by rtt_ewma x (pending + 1) (Linkerd).",
    "adaptive": "Experimental learning strategy; must earn its place in the benchmark.",
}

LOCALITY: Final = Record(
    {
        "prefer": Prop(
            Choice(d.LOCALITY_LEVELS),
            "Narrowest failure domain tried first: zone, region, cloud, or none.",
            d.LOCALITY_PREFER,
        ),
        "spill_threshold_percent": Prop(
            _PERCENT,
            "Utilisation of the preferred locality above which tasks spill outward.",
            d.SPILL_THRESHOLD_PERCENT,
        ),
        "overprovisioning_factor": Prop(
            Number(1.0, 10.0),
            "A locality with healthy share h keeps min(1, h x factor) of its traffic.",
            d.OVERPROVISIONING_FACTOR,
        ),
        "panic_threshold_percent": Prop(
            _PERCENT,
            "Below this healthy share, health is ignored and all hosts are used.",
            d.PANIC_THRESHOLD_PERCENT,
        ),
    }
)

CLOUD: Final = Record(
    {
        "weight": Prop(
            Number(0.0, 1000.0, exclusive_minimum=True),
            "Multiplier of the cloud's capacity when spreading tasks.",
            d.CLOUD_WEIGHT,
        ),
        "relative_cost": Prop(
            Number(0.0, 1000.0, exclusive_minimum=True),
            "Cost of a unit of work here relative to the other clouds.",
            d.CLOUD_RELATIVE_COST,
        ),
    }
)

FAILOVER: Final = Record(
    {
        "max_attempts": Prop(
            Integer(1, d.MAX_ATTEMPTS_LIMIT),
            "Attempts per task, the first included.",
            d.MAX_ATTEMPTS,
        ),
        "per_attempt_timeout_seconds": Prop(
            _SECONDS, "Deadline of one attempt.", d.PER_ATTEMPT_TIMEOUT_SECONDS
        ),
        "cross_cloud": Prop(
            Boolean(), "Retries may move to another cloud.", d.CROSS_CLOUD_FAILOVER
        ),
        "retry_budget": Prop(
            Record(
                {
                    "percent": Prop(
                        _PERCENT,
                        "Retries allowed as a share of active requests.",
                        d.RETRY_BUDGET_PERCENT,
                    ),
                    "min_concurrent": Prop(
                        Integer(0, 10_000),
                        "Retries always allowed at once.",
                        d.RETRY_BUDGET_MIN_CONCURRENT,
                    ),
                }
            ),
            "Caps retries so an outage does not become a retry storm.",
            {},
        ),
    }
)

OUTLIER_DETECTION: Final = Record(
    {
        "enabled": Prop(Boolean(), "Eject failing hosts.", d.OUTLIER_DETECTION_ENABLED),
        "interval_seconds": Prop(
            _SECONDS, "How often ejections are re-evaluated.", d.OUTLIER_INTERVAL_SECONDS
        ),
        "base_ejection_seconds": Prop(
            _SECONDS,
            "First ejection length; grows with repeated ejections.",
            d.OUTLIER_BASE_EJECTION_SECONDS,
        ),
        "max_ejection_percent": Prop(
            _PERCENT,
            "Most hosts ejected at once; 100 lets a whole cloud go.",
            d.OUTLIER_MAX_EJECTION_PERCENT,
        ),
        "consecutive_failures": Prop(
            Integer(1, 1000),
            "Consecutive failed attempts that eject a host.",
            d.OUTLIER_CONSECUTIVE_FAILURES,
        ),
    }
)

SESSIONS: Final = Record(
    {
        "affinity": Prop(
            Choice(d.SESSION_AFFINITIES),
            "Tasks naming a session: none (ignored), hash (consistent hashing) or "
            "bounded_hash (consistent hashing with bounded loads).",
            d.SESSION_AFFINITY,
        ),
        "load_factor": Prop(
            Number(1.0, 10.0, exclusive_minimum=True),
            "bounded_hash: a host takes no session task once its load reaches this "
            "multiple of its capacity's share of the load.",
            d.SESSION_LOAD_FACTOR,
        ),
        "virtual_nodes": Prop(
            Integer(1, d.SESSION_VIRTUAL_NODES_LIMIT),
            "Ring points of a host of average capacity; others get points in proportion.",
            d.SESSION_VIRTUAL_NODES,
        ),
    }
)

ROUTING_RULE: Final = Record(
    {
        "task_kind": Prop(_TASK_KIND, "Task kind, or a prefix ending in '*'."),
        "allowed_clouds": Prop(
            ListOf(_CLOUD, max_items=len(d.KNOWN_CLOUDS), unique=True),
            "Clouds where matching tasks may run; empty means any.",
            [],
        ),
        "allowed_regions": Prop(
            ListOf(_REGION, max_items=64, unique=True),
            "Regions where matching tasks may run; empty means any.",
            [],
        ),
    }
)

POLICY_SPEC: Final = Record(
    {
        "version": Prop(
            Integer(1, MAX_VERSION),
            "Monotonic version; agents adopt only a higher one.",
        ),
        "description": Prop(Text(max_length=1000), "Free text for operators.", ""),
        "strategy": Prop(
            Tagged(STRATEGY_PARAMS, d.STRATEGY, STRATEGY_DESCRIPTIONS),
            "Peer selection strategy and its parameters.",
            {},
        ),
        "locality": Prop(LOCALITY, "Keep tasks close; when to spill and to panic.", {}),
        "clouds": Prop(
            KeyedRecords(d.KNOWN_CLOUDS, CLOUD), "Per-cloud weight and relative cost.", {}
        ),
        "drained_clouds": Prop(
            ListOf(_CLOUD, max_items=len(d.KNOWN_CLOUDS), unique=True),
            "Clouds that receive no new tasks or retries.",
            [],
        ),
        "revoked_certificates": Prop(
            ListOf(
                Text(
                    max_length=40,
                    min_length=1,
                    pattern="[0-9a-f]+",
                    hint="a certificate serial in lowercase hex (`skyfleet certs issue` "
                    "prints it)",
                ),
                max_items=MAX_REVOKED,
                unique=True,
            ),
            "Serials of fleet certificates no agent accepts: their calls are refused and "
            "their nodes leave every member table.",
            [],
        ),
        "failover": Prop(FAILOVER, "Retries of a failed task.", {}),
        "outlier_detection": Prop(OUTLIER_DETECTION, "Ejection of failing hosts.", {}),
        "routing": Prop(
            Record(
                {
                    "rules": Prop(
                        ListOf(ROUTING_RULE, max_items=256),
                        "Ordered; the first rule matching a task's kind applies.",
                        [],
                    )
                }
            ),
            "Where tasks of each kind may run; kinds matching no rule run anywhere.",
            {},
        ),
        "sessions": Prop(
            SESSIONS,
            "Session affinity: a session's tasks go to the host that owns it on a hash ring "
            "of the peers the other rules leave.",
            {},
        ),
    }
)
