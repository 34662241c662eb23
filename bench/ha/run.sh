#!/usr/bin/env bash
# bench/ha/run.sh: management-node failover, provkit against keepalived, in the same run on
# the same network namespaces. For each system, N times: power off the active management node
# (its link goes down and every process of it is SIGKILLed), then measure from the client how
# long until the next successful HTTP answer (GET /tftpboot/hello.txt from provd) and DHCP
# answer (an OFFER whose server identifier is the VIP) through the virtual IP; then power the
# node back on, let it rejoin as the standby, and power off whichever node is active.
#
#   provkit:    provctl hafailover --auto on both nodes, lease in a PostgreSQL server (its own
#               namespace), provd run and supervised by provctl.
#   keepalived: VRRP between the nodes (both BACKUP, nopreempt, priority 100), provd started
#               by notify_master and stopped by notify_backup/fault/stop.
#
# Usage (root): bench/ha/run.sh
#   N=20 TTL=2s ARP_PROBES=3 ADVERT=1 SYSTEMS="provkit keepalived" bench/ha/run.sh
# ADVERT below 1 (e.g. 0.5) runs keepalived with VRRPv3 and that advertisement interval.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-20}
TTL=${TTL:-2s}
ARP_PROBES=${ARP_PROBES:-3}
ADVERT=${ADVERT:-1}
SYSTEMS=${SYSTEMS:-"provkit keepalived"}

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }
for p in ip unshare keepalived go; do
	command -v $p >/dev/null || { echo "run.sh: $p not found (scripts/setup-debian.sh installs it)" >&2; exit 1; }
done
W=$(mktemp -d /tmp/provkit-habench.XXXXXX)
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT
echo "# building provctl, provd and the driver"
go build -o "$W/provctl" ./examples/provctl
go build -o "$W/provd" ./examples/provd
go build -o "$W/habench" ./bench/ha
echo "# command: N=$N TTL=$TTL ARP_PROBES=$ARP_PROBES ADVERT=$ADVERT SYSTEMS=\"$SYSTEMS\" bench/ha/run.sh"
echo "# $(date -u +%FT%TZ) on $(nproc) cores, $(uname -r); $(keepalived --version 2>&1 | head -1)"
"$W/habench" -provctl "$W/provctl" -provd "$W/provd" -work "$W/work" -n "$N" -ttl "$TTL" \
	-arp-probes "$ARP_PROBES" -advert "$ADVERT" -systems "$SYSTEMS"
