#!/usr/bin/env bash
# Benchmarks of the cluster model and provctl at 10,000 nodes, on SQLite and PostgreSQL
# (issue 2): every command end to end as an admin runs it (a fresh process each time),
# wall time as the median of RUNS runs, and peak RSS (/usr/bin/time -v).
#   bench/cluster/run.sh [RUNS]        (default 5)
# Needs: go, /usr/bin/time (package time), PostgreSQL binaries (scripts/pg-test.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
N=10000
work=$(mktemp -d /tmp/provkit-bench-cluster.XXXXXX)
pgdir=$(mktemp -d /tmp/provkit-bench-pg.XXXXXX)
trap 'scripts/pg-test.sh stop "$pgdir" >/dev/null 2>&1; rm -rf "$work" "$pgdir"' EXIT
go build -o "$work/provctl" ./examples/provctl
P=$work/provctl

# median wall seconds and max peak RSS (MB) of RUNS runs of a command
measure() {
  local label=$1; shift
  local times=() rss=0
  for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
    read -r sec kb < "$work/t"
    times+=("$sec")
    (( kb > rss )) && rss=$kb
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  printf '| %-34s | %8s s | %6d MB |\n' "$label" "$med" $((rss / 1024))
}

populate() {
  local db=$1
  # groups with regex-valued attributes, as a real site keeps them
  $P --db "$db" chtab key=domain site.value=cluster.com
  $P --db "$db" chtab node=compute 'hosts.ip=|node(\d+)|10.0.(($1-1)/250).(($1-1)%250+1)|' 'ipmi.bmc=|node(\d+)|10.1.(($1-1)/250).(($1-1)%250+1)|' \
     nodetype.os=debian12 nodetype.arch=x86_64 nodetype.profile=compute \
     noderes.netboot=xnba nodehm.mgt=ipmi
  $P --db "$db" chtab node=all nodehm.serialport=0 nodehm.serialspeed=115200 'postscripts.postscripts=syslog,remoteshell'
}

run_backend() {
  local name=$1 db=$2
  echo
  echo "### $name, $N nodes"
  echo
  echo "| command | median wall | peak RSS |"
  echo "|---|---:|---:|"
  populate "$db"
  # nodeadd of the whole range (timed on a fresh range each run: remove it afterwards)
  local times=() rss=0
  for ((i = 0; i < RUNS; i++)); do
    $P --db "$db" noderm 'node[00001-10000]' 2>/dev/null || true
    /usr/bin/time -f '%e %M' -o "$work/t" $P --db "$db" nodeadd 'node[00001-10000]' groups=compute,all
    read -r sec kb < "$work/t"; times+=("$sec"); (( kb > rss )) && rss=$kb
  done
  printf '| %-34s | %8s s | %6d MB |\n' "nodeadd node[00001-10000]" \
    "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')" $((rss / 1024))
  # per-node MACs, as discovery records them
  awk -v n=$N 'BEGIN{print "#node,interface,mac"; for(i=1;i<=n;i++) printf "\"node%05d\",\"eth0\",\"52:54:00:00:%02x:%02x\"\n", i, int(i/256), i%256}' > "$work/mac.csv"
  $P --db "$db" tabrestore "$work/mac.csv"
  measure "lsdef -l (all 10,000 nodes)" $P --db "$db" lsdef -l
  measure "lsdef node05000" $P --db "$db" lsdef node05000
  measure "nodels compute" $P --db "$db" nodels compute
  measure "nodels compute nodehm.mgt" $P --db "$db" nodels compute nodehm.mgt
  measure "tabdump nodelist" $P --db "$db" tabdump nodelist
  measure "makehosts -n (10,000 nodes)" $P --db "$db" makehosts -n --file "$work/hosts"
  measure "lsdef -w ip==10.0.19.250 -s" $P --db "$db" lsdef -w ip==10.0.19.250 -s
}

echo "provkit cluster benchmark, $(date -u +%F), $(nproc) cores; command: bench/cluster/run.sh $RUNS"
run_backend SQLite "$work/provkit.db"
dsn=$(scripts/pg-test.sh start "$pgdir" 55439)
run_backend PostgreSQL "$dsn"
echo
echo "Go benchmarks (library: load a view, node view by MAC and by name, 10,000 nodes), SQLite then PostgreSQL:"
go test -run '^$' -bench 'BenchmarkNodeBy|BenchmarkLoadView' -benchmem ./cluster/ | grep -E '^Benchmark'
PROVKIT_BENCH_PG=$dsn go test -run '^$' -bench 'BenchmarkNodeBy|BenchmarkLoadView' -benchmem ./cluster/ | grep -E '^Benchmark'
