#!/usr/bin/env bash
# The guardrail pack's own virtualenv (infra/guardrails/venv), from its lock.
set -euo pipefail
cd "$(dirname "$0")"
[ -x venv/bin/python ] || python3 -m venv venv
venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
