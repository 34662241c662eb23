#!/usr/bin/env bash
# The main job. For now: build a demo cluster in an embedded SQLite store and print it.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: not built yet (the cluster model comes first)" >&2
exit 1
