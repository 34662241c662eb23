#!/usr/bin/env bash
# Runs every test of the module: starts a PostgreSQL server for the store suite, then
# `go test -tags integration ./...` as root with PROVKIT_INTEGRATION=require.
set -euo pipefail
cd "$(dirname "$0")/.."
pgdir=$(mktemp -d /tmp/provkit-pg.XXXXXX)
trap 'scripts/pg-test.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
PROVKIT_TEST_PG=$(scripts/pg-test.sh start "$pgdir" 55432)
export PROVKIT_TEST_PG
export PROVKIT_INTEGRATION=require
export PROVKIT_CACHE=${PROVKIT_CACHE:-$HOME/.cache/provkit}
start=$SECONDS
go test -tags integration -count=1 -timeout 25m "$@" ./...
echo "all tests passed in $((SECONDS - start)) s"
