#!/usr/bin/env bash
# The main job: build a demo cluster in an embedded SQLite store with provctl, the way an
# xCAT admin would, and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${PROVKIT_DEMO_DIR:-/tmp/provkit-demo}
mkdir -p "$work"
go build -o "$work/provctl" ./examples/provctl
export PROVKIT_DB=$work/provkit.db
rm -f "$PROVKIT_DB"*
p() { echo "+ provctl $*"; "$work/provctl" "$@"; }

p chtab key=domain site.value=cluster.demo
p mkdef -t network -o demonet net=10.93.0.0 mask=255.255.255.0 mgtifname=pkbr0 gateway=10.93.0.1 dynamicrange=10.93.0.200-10.93.0.250
p nodeadd 'n[01-04]' groups=compute,all
p chtab node=compute 'hosts.ip=|n(\d+)|10.93.0.($1+10)|' 'ipmi.bmc=|n(\d+)|10.95.0.($1+10)|' nodehm.mgt=ipmi noderes.netboot=xnba
p chtab node=n01 mac.mac=52:54:00:93:00:01
p mkdef -t osimage -o debian12-x86_64-netboot-compute osvers=debian12 osarch=x86_64 profile=compute provmethod=netboot rootimgdir=/install/netboot/debian12/x86_64/compute
p nodeset compute osimage=debian12-x86_64-netboot-compute
p lsdef n01
p nodels compute hosts.ip
p tabdump hosts
p makehosts -n --file "$work/hosts"
cat "$work/hosts"
