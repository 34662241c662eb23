#!/usr/bin/env bash
# Benchmark of package bmc: rpower stat and on against OpenIPMI's ipmi_sim simulators on
# loopback ports, side by side in the same run with bmclib's ipmitool provider and with a
# shell loop that runs ipmitool once per node (xCAT-era scripts, Warewulf's template).
# Then 1,000 simulators. Needs ipmi_sim and ipmitool (Debian: openipmi, ipmitool).
# Usage: bench/bmc/run.sh [N_SMALL] [N_LARGE]
set -euo pipefail
cd "$(dirname "$0")/../.."
small=${1:-100}
large=${2:-1000}
go build -o /tmp/bmcbench.$$ ./bench/bmc/bmcbench
trap 'rm -f /tmp/bmcbench.$$' EXIT
echo "# openipmi (ipmi_sim) $(dpkg-query -W -f='${Version}' openipmi); $(ipmitool -V); $(nproc) CPUs; $(go version)"
echo "# command: bench/bmc/run.sh $small $large"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: figures move with it)"
echo
echo "## $small nodes: provkit vs bmclib's ipmitool provider vs shell loop"
/tmp/bmcbench.$$ -n "$small" -ops stat,on
echo
echo "## $large nodes: provkit only (the shell loop would take minutes)"
/tmp/bmcbench.$$ -n "$large" -ops stat,on -peers=false
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
