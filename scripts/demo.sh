#!/usr/bin/env bash
# Install, then run the `local` environment: a real fleet of agents on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/skyfleet local demo "$@"
