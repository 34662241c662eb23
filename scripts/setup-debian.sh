#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh Debian machine: the packages in
# scripts/debian-packages.txt and staticcheck at a pinned version. Idempotent and quick when
# everything is already there. Must run as root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
STATICCHECK_VERSION=v0.7.0

mapfile -t pkgs < <(grep -v '^\s*#' "$here/debian-packages.txt" | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian starts some of these daemons on install where an init system runs; the tests
  # start their own instances, so keep packaged services from starting.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

gobin=$(go env GOPATH)/bin
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "$STATICCHECK_VERSION"; then
  echo "setup: installing staticcheck $STATICCHECK_VERSION"
  GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
