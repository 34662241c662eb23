#!/usr/bin/env bash
# The main job: a demo cluster that net-boots a VM on this machine.
#
# provctl defines the cluster in an embedded SQLite store as an xCAT admin would (site,
# network, nodes in groups with regex-valued attributes, an osimage), builds and packs a
# small stateless image with genimage/packimage, and sets the node to boot it (nodeset).
# provd then serves DHCP, TFTP and HTTP from that store inside a private network
# namespace, and a qemu VM (node n1, TCG) PXE-boots from it: iPXE script, Debian kernel,
# provkit's initramfs (nodeinit), the image. The node's states are printed as it reports
# them; nodestat shows n1 booted at the end.
#
# Needs root (network namespace, tap device, port 67); `make demo` installs the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${PROVKIT_DEMO_DIR:-/tmp/provkit-demo}
cache=${PROVKIT_CACHE:-$HOME/.cache/provkit}
ns=pkdemo
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespace, tap, port 67)" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del $ns 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$work"; mkdir -p "$work"/{bin,tftpboot,install,src} "$cache"

echo "== building provctl, provd and nodeinit"
for c in provctl provd nodeinit; do
  CGO_ENABLED=0 go build -trimpath -o "$work/bin/$c" ./examples/$c
done
export PROVKIT_DB=$work/provkit.db
p() { echo "+ provctl $*"; "$work/bin/provctl" "$@"; }

echo "== the Debian kernel package (cached in $cache)"
ver=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1)
kdir=$cache/debian-kernel/$ver
deb=$(ls "$kdir"/linux-image-*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  mkdir -p "$kdir" && (cd "$kdir" && apt-get download -q "linux-image-$ver" >/dev/null)
  deb=$(ls "$kdir"/linux-image-*.deb | head -1)
fi
echo "kernel $ver: $deb"

echo "== a small root filesystem (busybox)"
src=$work/src
mkdir -p "$src"/{bin,sbin,proc,sys,dev,run,tmp,etc,var}
cp /bin/busybox "$src/bin/busybox"; ln -s busybox "$src/bin/sh"
cat > "$src/sbin/init" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
echo "DEMO: the image's init runs on $(hostname), root $(stat -f -c %T /), $(ip -4 -o addr show | awk '/eth|ens|enp/{print $2, $4}')"
sleep 15
poweroff -f
EOF
chmod +x "$src/sbin/init"

echo "== the cluster, as an xCAT admin defines it"
p chtab key=domain site.value=cluster.demo
p chtab key=tftpdir site.value="$work/tftpboot"
p chtab key=installdir site.value="$work/install"
p chtab key=dhcpinterfaces site.value=br0
p mkdef -t network -o demonet net=10.93.0.0 mask=255.255.255.0 mgtifname=br0 dynamicrange=10.93.0.200-10.93.0.250
p nodeadd 'n[01-04]' groups=compute,all
p chtab node=compute 'hosts.ip=|n(\d+)|10.93.0.($1+10)|' 'ipmi.bmc=|n(\d+)|10.95.0.($1+10)|' nodehm.mgt=ipmi \
  noderes.netboot=xnba nodehm.serialport=0 nodehm.serialspeed=115200
p chtab node=n01 mac.mac=52:54:00:93:00:01
p mkdef -t osimage -o busybox-x86_64-netboot-compute osvers=busybox osarch=x86_64 profile=compute provmethod=netboot \
  rootimgdir="$work/install/netboot/busybox/x86_64/compute" 'addkcmdline=quiet panic=-1'
p genimage busybox-x86_64-netboot-compute --source dir:"$src" --kernel-deb "$deb" --nodeinit "$work/bin/nodeinit"
p packimage busybox-x86_64-netboot-compute
p nodeset n01 osimage=busybox-x86_64-netboot-compute
p lsdef n01
p makedhcp n01 -q
p makehosts -n --file "$work/hosts"; cat "$work/hosts"

echo "== a private network: namespace $ns, bridge br0 10.93.0.1/24, a tap for the VM"
ip netns del $ns 2>/dev/null || true
ip netns add $ns
ip -n $ns link set lo up
ip -n $ns link add br0 type bridge forward_delay 0 stp_state 0
ip -n $ns addr add 10.93.0.1/24 dev br0
ip -n $ns addr add fd00:93::1/64 dev br0 nodad
ip -n $ns link set br0 up
ip -n $ns tuntap add dev tap0 mode tap
ip -n $ns link set tap0 master br0
ip -n $ns link set tap0 up

echo "== provd: DHCP, TFTP, HTTP from the store (log: $work/provd.log)"
ip netns exec $ns "$work/bin/provd" --db "$PROVKIT_DB" --ra-interface br0 --ra-prefix fd00:93::/64 >"$work/provd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "provd serving" "$work/provd.log" && break; sleep 0.2; done

echo "== node n01 powers on (qemu, TCG; console: $work/n01-console.log)"
ip netns exec $ns qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -display none -vga none \
  -serial file:"$work/n01-console.log" -monitor none -no-reboot -no-user-config \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:93:00:01 \
  -boot n </dev/null >"$work/qemu.log" 2>&1 &
qemu=$!; pids+=($qemu)
start=$SECONDS last=""
while kill -0 $qemu 2>/dev/null && (( SECONDS - start < 240 )); do
  st=$("$work/bin/provctl" nodestat n01)
  if [ "$st" != "$last" ]; then echo "[$((SECONDS - start))s] $st"; last=$st; fi
  [ "$st" = "n01: booted" ] && break
  sleep 0.2
done
for _ in $(seq 100); do grep -aq "DEMO:" "$work/n01-console.log" && break; sleep 0.2; done
grep -a "DEMO:" "$work/n01-console.log" || true
p nodestat compute
if [ "$last" != "n01: booted" ]; then
  echo "demo: n01 did not boot; last console lines:" >&2; tail -20 "$work/n01-console.log" >&2; exit 1
fi
echo "== n01 net-booted from provkit in $((SECONDS - start)) s"
