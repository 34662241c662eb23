package vmtest

// DiskBootInit is /sbin/init of a golden system for disk-boot tests (sysclone): it
// proves that a clone booted from its own disk under its own name, printing
// "PROVKIT-DISK-BOOT host=<hostname> root=<device>,<fstype>", and reports "booted" as an
// installed system does (nodeinit report, from /etc/provkit/node.conf that the deploy's
// fix-ups write). Format it with the eth0 address in CIDR form: busybox init runs no
// DHCP client.
const DiskBootInit = `#!/bin/sh
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
hostname -F /etc/hostname
ip link set lo up
ip link set eth0 up
ip addr add %s dev eth0
echo "PROVKIT-DISK-BOOT host=$(hostname) root=$(awk '$2=="/"{print $1 "," $3}' /proc/mounts)"
nodeinit report booted
sleep 60
poweroff -f
`

// DiskBootInitramfs is the init script (for BusyboxInitramfs) of such a golden system's
// own initramfs: wait for /dev/vda2, mount it, switch to it.
const DiskBootInitramfs = `mkdir -p /newroot
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda2 ] && break; sleep 1; done
mount -t ext4 /dev/vda2 /newroot || echo "PROVKIT-DISK-BOOT-FAILED: mount /dev/vda2"
exec /bin/busybox switch_root /newroot /sbin/init
`
