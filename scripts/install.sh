#!/usr/bin/env bash
# Install everything Skyfleet needs on a fresh Debian machine, idempotently: system
# packages (when root), the project with all extras in ./.venv from the lock
# (requirements.txt), the Pulumi CLI (found, or built from Go modules and cached), and the
# guardrail pack in its own virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_needed=()
command -v ip >/dev/null 2>&1 || apt_needed+=(iproute2)       # network namespaces
command -v iptables >/dev/null 2>&1 || apt_needed+=(iptables) # cutting a cloud off
if [ "${SKYFLEET_TEST:-0}" = 1 ]; then
  # The boot test: a Debian 12 root filesystem, booted with systemd as PID 1.
  command -v debootstrap >/dev/null 2>&1 || apt_needed+=(debootstrap)
  command -v systemd-nspawn >/dev/null 2>&1 || apt_needed+=(systemd-container)
fi
if [ "${SKYFLEET_BENCH:-0}" = 1 ]; then
  command -v serf >/dev/null 2>&1 || apt_needed+=(serf)       # side-by-side benchmarks
fi
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}" >/dev/null
  else
    echo "install.sh: not root, skipping system packages: ${apt_needed[*]}" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
bash tools/pulumi/install.sh
bash infra/guardrails/install.sh
