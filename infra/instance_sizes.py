"""Instance sizes a host can have: named as its cloud names sizes, and x86_64.

The runtime bundle carries x86_64 wheels for the x86_64 Debian 12 image
(`infra.images`, `infra.runtime_bundle`), so an Arm size (AWS Graviton, Azure Cobalt or
Ampere, GCP Axion or Tau T2A) would boot an image it cannot run: refused here, naming
the key, before anything is created. Whether a well-formed size is offered in the
region is the provider's answer at `pulumi preview`; no size catalogue is copied here.
"""

from __future__ import annotations

import re

_AWS = re.compile(
    r"(?P<family>[a-z]+(?P<generation>\d+)(?P<options>[a-z-]*))\."
    r"(nano|micro|small|medium|large|xlarge|\d+xlarge|metal|metal-\d+xl)"
)
"""t3.small, m7i.2xlarge, c7gn.metal; the options after the generation say Graviton
with a "g" (t4g, m7gd, c7gn)."""
_AZURE = re.compile(r"Standard_[A-Z]+\d+(?P<options>[a-z]*)(-\d+)?[a-z]*(_[A-Za-z0-9]+)*")
"""Standard_B2s, Standard_D4s_v5, Standard_D2ps_v5; a "p" in the options is Arm."""
_GCP = re.compile(
    r"(?P<family>[a-z]+\d+(?P<options>[a-z]?))-"
    r"(micro|small|medium|(standard|highmem|highcpu|highgpu|megamem|ultramem|custom)"
    r"(-\d+g?)+(-lssd)?)"
)
"""e2-small, n2-standard-4, c3d-highmem-8; a family ending in "a" (t2a, c4a) is Arm."""


_RULES = {
    "aws": (_AWS, "an EC2 instance type (like t3.small)", lambda m: "g" in m["options"],
            "an Arm (Graviton) type"),
    "azure": (_AZURE, "an Azure VM size (like Standard_B2s)", lambda m: "p" in m["options"],
              "an Arm size"),
    "gcp": (_GCP, "a Compute Engine machine type (like e2-small)",
            lambda m: m["options"] == "a", "an Arm machine type"),
}
"""Cloud -> (name pattern, what a name looks like, is it Arm, what an Arm one is)."""


def check_instance_size(cloud: str, size: str) -> str | None:
    """None for a usable size, else why not (the caller names the key)."""
    pattern, looks_like, arm, arm_kind = _RULES[cloud]
    match = pattern.fullmatch(size)
    if match is None:
        return f"{size!r} is not {looks_like}"
    if arm(match):
        return f"{size!r} is {arm_kind}; hosts run x86_64 images"
    return None
