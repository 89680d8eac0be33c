"""The pack's tests import it the way `__main__` does: its folder on sys.path."""

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[1]
if str(PACK) not in sys.path:
    sys.path.insert(0, str(PACK))
