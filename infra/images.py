"""The host image: Debian 12 (bookworm) on all three clouds.

Chosen because it is the one family each cloud publishes from the same distributor
(Debian's own cloud team builds the AWS, Azure and GCP images from one recipe) with
Python 3.11 as its python3, which the runtime needs (>= 3.11), plus curl and cloud-init
out of the box. Amazon Linux 2023 (3.9) and Ubuntu 22.04 (3.10) are too old; Ubuntu
24.04 (3.12) would also do, but is published by a different party per cloud.

Each cloud resolves the newest image by its own query at `pulumi up`, never a hard-coded
id; hosts pin what they booted (`ignore_changes` on the image), so a newer image is
rolled deliberately, not as a side effect. The boot test (tests/boot) applies the user
data in a Debian 12 root filesystem made by debootstrap from the same distribution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Typing only: the local stack (through runtime_bundle) and the AWS and GCP hosts
    # import this module and should not load the Azure SDK.
    from pulumi_azure_native.compute import ImageReferenceArgsDict

AWS_OWNER = "136693071363"
"""Debian's AWS account (https://wiki.debian.org/Cloud/AmazonEC2Image/Bookworm)."""
AWS_NAME = "debian-12-amd64-*"

AZURE_IMAGE: ImageReferenceArgsDict = {"publisher": "Debian", "offer": "debian-12",
                                      "sku": "12-gen2", "version": "latest"}
"""Azure's marketplace query: "latest" resolves to the newest published version when the
VM is created (https://wiki.debian.org/Cloud/MicrosoftAzure)."""

GCP_FAMILY = "debian-12"
GCP_PROJECT = "debian-cloud"
"""GCP's image family in Debian's public project: resolves to the newest non-deprecated
image (https://cloud.google.com/compute/docs/images/os-details#debian)."""

PYTHON = "3.11"
"""python3 on every host image: the wheels of the runtime bundle are chosen for it."""
