"""Skyfleet's Pulumi program: read the stack config once, then compose the components.

`pulumi up -s <env>`: hosts per enabled cloud (spread over zones), the VPN mesh between
the clouds, and the signed policy published where each cloud's agents read it. The
`local` stack runs the same composition with local agent processes and a policy file.
"""

from pathlib import Path

import pulumi

# The program is the installed `infra` package (scripts/install.sh installs the project
# into the virtualenv): the dynamic providers it registers are loaded by name in the
# provider process, which must import exactly these modules.
from infra.config import StackConfigError
from infra.program import compose

# The project folder (Pulumi.yaml's), against which policyFile and localStateDir resolve.
root = Path(pulumi.get_root_directory() or Path.cwd().parent)
try:
    compose(pulumi.Config("skyfleet"), pulumi.get_project(), pulumi.get_stack(), root)
except StackConfigError as exc:
    # A bad stack config is the operator's to fix: the key and the reason, no traceback.
    raise pulumi.RunError(str(exc)) from None
