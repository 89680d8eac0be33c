"""Make the Pulumi program (`infra/`, run by Pulumi as a directory) importable as a package."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The provider SDKs deprecate some of their own modules with a DeprecationWarning at
# import time, which pytest's filterwarnings=error would turn into a failure that says
# nothing about our code. Import the modules the program uses once, warnings silenced.
import importlib  # noqa: E402
import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    for _module in (
        "pulumi_aws.ec2", "pulumi_aws.iam", "pulumi_aws.ssm",
        "pulumi_azure_native.resources", "pulumi_azure_native.network",
        "pulumi_azure_native.compute", "pulumi_azure_native.managedidentity",
        "pulumi_azure_native.storage", "pulumi_azure_native.authorization",
        "pulumi_gcp.compute", "pulumi_gcp.storage", "pulumi_gcp.serviceaccount",
    ):
        # The SDKs load submodules lazily: touching an attribute really imports them.
        getattr(importlib.import_module(_module), "_skyfleet_force_load", None)
