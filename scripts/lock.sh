#!/usr/bin/env bash
# Regenerate requirements.txt, the lock scripts/install.sh and `pulumi install` install:
# resolve pyproject.toml with every extra in a fresh virtualenv and freeze the result.
# The gRPC packages move as one family (the generated stubs name their grpcio version).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
family=$(sed -n 's/.*"grpcio-tools==\([0-9]*\.[0-9]*\)\..*/\1/p' pyproject.toml)
printf 'grpcio==%s.*\ngrpcio-health-checking==%s.*\ngrpcio-reflection==%s.*\n' \
  "$family" "$family" "$family" > "$tmp/constraints.txt"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check -c "$tmp/constraints.txt" \
  -e ".[demo,infra,test,bench]" -e examples/assistant
{
  echo "# The lock: every package of the project's virtualenv, pinned (scripts/lock.sh writes it)."
  echo "# Installed by scripts/install.sh and by \`pulumi install\` (Pulumi.yaml: toolchain pip)."
  "$tmp/venv/bin/pip" freeze --exclude-editable
  echo "-e .[demo,infra,test,bench]"
  echo "-e examples/assistant"   # the example agent package, its tests run with the suite
} > requirements.txt
echo "requirements.txt: $(grep -c '==' requirements.txt) pins"
