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


def check_instance_size(cloud: str, size: str) -> str | None:
    """None for a usable size, else why not (the caller names the key)."""
    if cloud == "aws":
        m = _AWS.fullmatch(size)
        if m is None:
            return f"{size!r} is not an EC2 instance type (like t3.small)"
        if "g" in m["options"]:
            return f"{size!r} is an Arm (Graviton) type; hosts run x86_64 images"
    elif cloud == "azure":
        m = _AZURE.fullmatch(size)
        if m is None:
            return f"{size!r} is not an Azure VM size (like Standard_B2s)"
        if "p" in m["options"]:
            return f"{size!r} is an Arm size; hosts run x86_64 images"
    else:
        m = _GCP.fullmatch(size)
        if m is None:
            return f"{size!r} is not a Compute Engine machine type (like e2-small)"
        if m["options"] == "a":
            return f"{size!r} is an Arm machine type; hosts run x86_64 images"
    return None
