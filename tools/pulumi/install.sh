#!/usr/bin/env bash
# Find or build the Pulumi CLI and a Python language host, and link `pulumi` into
# .venv/bin, so the project's programs run under the real engine.
#
#   - A `pulumi` already on PATH at or above the pinned version is used as it is (a CLI
#     distribution brings its own language host and plugin launchers): nothing is built.
#   - Otherwise the CLI is built from Go modules (the pin is tools/pulumi/cli/go.mod) with
#     the Python language host of this folder (cli/language-python: the distribution's own
#     has no module version the proxy serves, see its comment), into a cache outside the
#     work tree keyed by the build inputs, so later clones on the same machine reuse it.
#     Cold, on two cores, the CLI takes about 6 minutes and the host under a minute.
#   - Beside them go the two small scripts a source build lacks (tools/pulumi/bin/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv_bin=$root/.venv/bin

pin_of() { # the version go.mod $2 requires of module $1
  awk -v m="$1" '{ if ($1 == "require") $0 = substr($0, index($0, $2)) } $1 == m { print $2 }' "$2"
}
pinned=$(pin_of github.com/pulumi/pulumi/pkg/v3 "$here/cli/go.mod")
[ -n "$pinned" ] || { echo "tools/pulumi: no pinned version in cli/go.mod" >&2; exit 1; }

say() { echo "pulumi: $*" >&2; }

version_at_least() { # $1 >= $2, both vX.Y.Z
  [ "$(printf '%s\n%s\n' "${1#v}" "${2#v}" | sort -V | head -n 1)" = "${2#v}" ]
}

link() {
  mkdir -p "$venv_bin"
  ln -sfn "$1" "$venv_bin/pulumi"
}

# 1. A CLI the machine already has (not our own link).
if found=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$venv_bin" | paste -sd: -) \
    command -v pulumi 2>/dev/null); then
  have=$("$found" version 2>/dev/null || true)
  if [ -n "$have" ] && version_at_least "$have" "$pinned"; then
    say "using $found ($have >= $pinned)"
    link "$(readlink -f "$found")"
    exit 0
  fi
  say "ignoring $found (${have:-no version} < $pinned)"
fi

# 2. Our build, cached by its inputs.
key=$(cat "$here/cli/go.mod" "$here/cli/go.sum" "$here/cli/language-python/main.go" \
  | sha256sum | cut -c1-12)
cache=${SKYFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skyfleet}/pulumi-${pinned#v}-$key
if [ ! -x "$cache/bin/pulumi" ] || [ ! -x "$cache/bin/pulumi-language-python" ]; then
  command -v go >/dev/null 2>&1 || { say "no Go toolchain to build the CLI with (install Go >= 1.26)"; exit 1; }
  say "building the CLI $pinned and the Python language host into $cache (cold: ~6 min)"
  tmp=$(mktemp -d "${cache%/*}/.build.XXXXXX" 2>/dev/null || { mkdir -p "${cache%/*}"; mktemp -d "${cache%/*}/.build.XXXXXX"; })
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  stamp=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
  (cd "$here/cli" && go build -trimpath -ldflags "-s -w -X $stamp=$pinned" \
    -o "$tmp/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  (cd "$here/cli" && go build -trimpath -ldflags "-s -w -X main.version=$pinned-skyfleet" \
    -o "$tmp/bin/pulumi-language-python" ./language-python)
  rm -rf "$cache"
  mv "$tmp" "$cache"
  trap - EXIT
  say "built in $(( $(date +%s) - start )) s"
fi
# The scripts are copied on every install (cheap), so an edit reaches the cached build.
install -m 0755 "$here/bin/pulumi-language-python-exec" "$here/bin/pulumi-resource-pulumi-python" \
  "$cache/bin/"
link "$cache/bin/pulumi"
say "$("$venv_bin/pulumi" version) at $cache/bin"
