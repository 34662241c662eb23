#!/usr/bin/env bash
# Runs every test of the module: starts a PostgreSQL server for the store suite, then
# `go test -tags integration ./...` as root with PROVKIT_INTEGRATION=require.
set -euo pipefail
cd "$(dirname "$0")/.."
pgdir=$(mktemp -d /tmp/provkit-pg.XXXXXX)
trap 'scripts/pg-test.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
# A free loopback port, so a PostgreSQL already running here does not matter.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROVKIT_TEST_PG=$(scripts/pg-test.sh start "$pgdir" "$port")
export PROVKIT_TEST_PG
export PROVKIT_INTEGRATION=require
export PROVKIT_CACHE=${PROVKIT_CACHE:-$HOME/.cache/provkit}
start=$SECONDS
go test -tags integration -count=1 -timeout 25m "$@" ./...
echo "all tests passed in $((SECONDS - start)) s"
