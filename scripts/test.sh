#!/usr/bin/env bash
# Install (with the test-only system packages), then lint, type-check and run the whole test suite
# (what CI runs): the project's tests in its virtualenv, the guardrail pack's own tests in
# the pack's.
set -euo pipefail
cd "$(dirname "$0")/.."
SKYFLEET_TEST=1 bash scripts/install.sh
# The boot test's root filesystem: built once (about a minute), cached in ~/.cache/skyfleet.
if [ "$(id -u)" = 0 ]; then .venv/bin/python -m tests.boot.rootfs >/dev/null; fi
.venv/bin/ruff check .
# Types (pyproject.toml [tool.mypy]); the cache of third-party stubs (Pulumi's SDKs are
# most of the first run's two minutes) is kept beside the other one-time builds.
.venv/bin/mypy --cache-dir "${XDG_CACHE_HOME:-$HOME/.cache}/skyfleet/mypy"
(cd infra/guardrails && venv/bin/python -m pytest -q -p no:cacheprovider)
.venv/bin/pytest "$@"
