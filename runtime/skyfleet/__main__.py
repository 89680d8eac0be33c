"""`python -m skyfleet`: the same as the `skyfleet` console script."""

import sys

from skyfleet.cli.main import main

sys.exit(main())
