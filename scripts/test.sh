#!/usr/bin/env bash
# Install, then lint and run the whole test suite (what CI runs): the project's tests in
# its virtualenv, the guardrail pack's own tests in the pack's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
(cd infra/guardrails && venv/bin/python -m pytest -q -p no:cacheprovider)
.venv/bin/pytest "$@"
