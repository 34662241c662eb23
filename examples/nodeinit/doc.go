// Command nodeinit is the /init of provkit's netboot initramfs: it brings up the
// network, loads the kernel modules the node needs, gets the root filesystem (a packed
// image over HTTP into RAM, or an NFS export), reports each step to the management node,
// and hands over to the image's own init with switch_root.
//
// Build it static and put it in an initramfs with package image:
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o nodeinit ./examples/nodeinit
//
//	image.MakeBoot(ctx, image.BootSpec{
//		Dir:       "/tftpboot/xcat/osimage/bookworm-netboot", // kernel + initrd-stateless.gz
//		ImageRoot: "/install/netboot/bookworm/x86_64/compute/rootimg",
//		Init:      "nodeinit",
//		Modules:   append(image.VirtioNetModules(), "e1000e", "nfsv3"),
//	})
//
// nodeinit check '<command line>' prints what nodeinit would do with a kernel command
// line, or why it would refuse it, without booting anything.
//
// # Kernel command line
//
// This is the contract between nodeset (provd, which writes the boot loader
// configuration) and nodeinit. Parameters nodeinit does not know are ignored, so xCAT's
// own (XCAT=, FC=, XCATHTTPPORT=) and the kernel's (console=, quiet, panic=) can stay.
// A known parameter with a bad value stops the boot with a message naming it.
//
// The root: exactly one of
//
//	imgurl=<url>
//	    A packed image fetched over HTTP and unpacked into a
//	    tmpfs as it streams in: cpio (newc) or tar, compressed with gzip, zstd or xz
//	    or not at all, or a squashfs image (stored in /run, loop-mounted, with a tmpfs
//	    overlay; needs the loop, squashfs and overlay modules). The format is read
//	    from the content, not the name. xCAT's form works as it is:
//	    imgurl=http://10.0.0.1:80//install/netboot/.../rootimg.cpio.gz
//	    https:// works when the initramfs carries CA certificates
//	    (InitramfsSpec.Files: "etc/ssl/certs/ca-certificates.crt"); it has none by
//	    default.
//	root=nfs:<server>:<path>[:<options>]
//	    An NFSv3 root mounted with the kernel client (needs the nfsv3 module). The
//	    options are mount options separated by commas. nodeinit adds ro (unless rw is
//	    given), nolock, vers=3, proto=tcp and mountproto=tcp unless they are given, and
//	    always addr=<server address> (resolved with the DHCP-provided DNS if <server>
//	    is a name). provd's NFS server answers the portmapper, so plain options do;
//	    a server without one (stock go-nfs) needs port=<nfs port>,mountport=<mountd
//	    port>; noacl saves a round trip.
//	    Example: root=nfs:10.0.0.1:/install/netboot/rootimg:ro,noacl
//
//	provkit.imgsha256=<64 hex digits>
//	    The SHA-256 of the image file as served. nodeinit hashes the download while
//	    it unpacks and refuses to switch to a root whose checksum differs.
//
// The node and its reports:
//
//	NODE=<name>
//	    The node's name (xCAT's parameter): the hostname nodeinit sets, and the "node"
//	    of every report.
//	provkit.status=<url>
//	    Where to report. nodeinit POSTs {"node":"<name>","state":"<state>"} with
//	    Content-Type application/json and expects a 2xx answer; it tries 3 times
//	    (5 s each) and boots on if nobody answers. The states, in order:
//	      netbooting      the network is up; fetching or mounting the root
//	      booting         the root is ready and has an init; switching to it
//	      booted          the image's init runs as PID 1
//	      failed: <why>   a step failed after the network came up (one line, at most
//	                      300 bytes); before that nothing can be reported
//	    "booted" is reported by a small watcher process that nodeinit starts just
//	    before it executes the new init: the watcher waits until PID 1's executable
//	    is no longer nodeinit (/proc/1/exe), so "booted" means the exec succeeded and
//	    the image's init is running. If the watcher cannot start, nodeinit reports
//	    "booted" just before the exec. If the exec fails, nodeinit stops the watcher
//	    and reports "failed: exec <init>: ...".
//
// The network:
//
//	BOOTIF=01-aa-bb-cc-dd-ee-ff
//	    The MAC of the interface to configure, as pxelinux (IPAPPEND 2) and xCAT's
//	    iPXE scripts write it (BOOTIF=01-${netX/mac:hexhyp}); aa:bb:cc:dd:ee:ff works
//	    too. Without it, the first interface (by index) that has a link.
//	provkit.ifname=<name>
//	    The interface to configure, by name (wins over BOOTIF=).
//	provkit.nettimeout=<seconds>
//	    How long to wait for the interface and a DHCP lease. Default 60.
//
// The interface is configured with DHCPv4 (u-root's dhclient: address, default route,
// /etc/resolv.conf). The DHCP request carries the vendor class "provkit-nodeinit".
//
// The root, continued:
//
//	provkit.init=<path>
//	    The init to execute in the new root. Default /sbin/init. nodeinit checks that
//	    it exists and is executable (following symlinks inside the new root) before
//	    it switches.
//	provkit.rootsize=<size>
//	    The tmpfs size for an imgurl= root (2g, 1536m, 80%). Default: the kernel's
//	    (half the RAM).
//	provkit.overlay=1
//	    For root=nfs: mount the export read-only below a writable tmpfs overlay.
//	provkit.cdsl=1
//	    Apply the root's CDSL bind-mount plan (package cdsl, Open Sharedroot's layout)
//	    for NODE= before switching: the node's tree, or the default one, on
//	    cdsl.local. For roots that hold every node's tree (a RAM image, or an export
//	    of a plain NFS server); provd's NFS server resolves CDSLs itself.
//	provkit.modules=<a,b,...>
//	    Kernel modules to load in addition to the initramfs's list
//	    (/etc/provkit/modules, written by image.WriteInitramfs); they must be in the
//	    initramfs.
//
// Discovery mode (provd boots nodes whose MAC is in no table this way; there is no root
// then, and NODE= is not known yet):
//
//	provkit.discover=<url>
//	    provd's discovery API (http://<provd>/api/v1/discover). nodeinit listens for
//	    LLDP on every interface from the start, brings the network up, collects the
//	    node's identity and POSTs it as JSON (Content-Type application/json):
//	      {"uuid": DMI product_uuid (else "mac-<boot MAC hex>"),
//	       "bootmac": "aa:bb:cc:dd:ee:ff", "arch": "x86_64",
//	       "cputype": /proc/cpuinfo model name, "cpucount": N, "memory_mib": N,
//	       "mtm": DMI product_name, "serial": DMI product_serial, "vendor": DMI sys_vendor,
//	       "disks": ["sda:480GB", ...],
//	       "nics": [{"name": "eth0", "mac": "...", "driver": "virtio_net",
//	                 "ipv4": "10.0.0.200/24",
//	                 "lldp": {"sysname": ..., "sysdesc": ..., "chassisid": ...,
//	                          "mgmtaddr": ..., "portid": ..., "portdesc": ...}}]}
//	    provd answers {"node": ..., "ip": ..., "action": ..., "retry": N, "message": ...}
//	    and nodeinit does the action: "reboot" (into what discovery set up: the node's
//	    chain ran nodeset), "shell" (a shell from the initramfs, then reboot), or
//	    "wait": ask again after "retry" seconds (at most 300; 10 if absent), as it also
//	    does when provd cannot be reached. It asks until told to reboot.
//	    When the node's chain has runcmd=bmcsetup, the answer also has
//	      "bmc": {"addr": "10.98.1.7/16", "gateway": "10.98.0.254",
//	              "user": ..., "password": ..., "vlan": N}
//	    and nodeinit first sets it on the node's BMC over in-band IPMI (/dev/ipmi0 of
//	    the ipmi_msghandler, ipmi_devintf and ipmi_si modules, which provctl mknb puts
//	    in the discovery image; package bmc/ipmi/inband): static address, netmask,
//	    gateway and VLAN of the LAN channel, the user's name, password, administrator
//	    privilege and enable, the channel's access. It then POSTs what it did to
//	    <url>/bmcsetup, {"uuid", "node", "ok", "channel", "userid", "steps": [...],
//	    "error"}, and goes on with the action whether it worked or not (provd logs
//	    "bmcsetup done" or "bmcsetup failed" with the reason). It does this once per
//	    boot. The password is never printed; it comes in provd's plain HTTP answer on
//	    the provisioning network, as in xCAT's genesis.
//	    When the chain has runimage=<URL> steps, the answer also has
//	      "runimages": ["http://.../a.tgz", ...]
//	    and nodeinit, after bmcsetup, fetches each archive (tar, gzip'd or not),
//	    unpacks it into a fresh directory under /tmp and runs its runme.sh there with
//	    the initramfs's shell (provctl mknb puts busybox in), PROVKIT_NODE set to the
//	    node's name, the output on the console; a failure is printed and the next step
//	    runs, as in xCAT's genesis. Each URL runs once per boot.
//	provkit.lldpwait=<seconds>
//	    How long to listen for the switch's LLDP frame before reporting (0 to 300,
//	    default 10). Switches send LLDP every 30 s by default; one that saw no frame
//	    reports no "lldp".
//
// Sysclone mode (nodeset <nodes> osimage=<image> with provmethod sysclone):
//
//	provkit.sysclone=<url>
//	    Install to disk instead of booting a root: the URL of the osimage directory
//	    provctl imgcapture made (provd serves it under /install/sysclone/images/<image>).
//	    nodeinit reads <url>/layout.json, refuses a disk smaller than the golden one
//	    before writing anything, partitions the disk to the golden layout (the last
//	    partition grows), makes the filesystems with the golden UUIDs, streams
//	    <url>/rootimg.sysclone onto them, lays over it the override trees that
//	    <url>/overrides.list names (overrides/<name>.sysclone, SystemImager style),
//	    installs the boot loader with the image's own extlinux or grub-install
//	    (chroot), and writes the clone's hostname (NODE=), /etc/hosts, a fresh
//	    machine-id and SSH host keys, DHCP on the boot interface (ifupdown or
//	    systemd-networkd) and /etc/provkit/node.conf; then it reboots. It reports
//	    partitioning, formatting, imaging, overrides (if any), bootloader, fixup,
//	    installed (or failed: ...); the installed system reports booted with
//	    "nodeinit report booted" (node.conf holds NODE= and STATUS=). Needs NODE=;
//	    excludes imgurl= and root=. The initramfs carries sfdisk, partx and the mkfs
//	    programs the layout needs (image.ProgramFiles) and the disk and filesystem
//	    modules; provctl imgcapture writes it (initrd-sysclone.gz).
//	provkit.disk=/dev/<name>
//	    The disk that receives the golden node's first disk (default: the same name).
//
// When something fails:
//
//	provkit.rescue=1
//	    After the failure is printed (and reported), start a shell from the initramfs
//	    (/bin/sh, busybox, or u-root's elvish/gosh) on the console; when it exits the
//	    node reboots. Without a shell, or without this parameter, nodeinit exits and
//	    the kernel panics: add the kernel's panic=<seconds> to reboot after a delay.
//	provkit.debug=1
//	    More console lines (timings of each report, the lease).
//
// Words without "=" that the kernel passes to init (single, emergency, ...) are passed
// on to the new init; so is the environment the kernel gave nodeinit.
//
// # What a boot looks like
//
// An iPXE script in xCAT's form, as provd should write it:
//
//	#!ipxe
//	kernel http://10.0.0.1/tftpboot/xcat/osimage/img/kernel console=ttyS0 quiet panic=30 imgurl=http://10.0.0.1:80//install/netboot/img/rootimg.cpio.gz NODE=n1 BOOTIF=01-${netX/mac:hexhyp} provkit.status=http://10.0.0.1:8080/api/status
//	initrd http://10.0.0.1/tftpboot/xcat/osimage/img/initrd-stateless.gz
//	boot
//
// and the console then shows (from the VM test, TCG):
//
//	nodeinit: [  0.0s] provkit nodeinit: node "n1", root stateless from http://.../rootimg.cpio.gz
//	nodeinit: [  0.4s] modules: 8 loaded in 0.4s
//	nodeinit: [  0.5s] network: eth0 (52:54:00:98:14:05), link up after 0.0s; DHCP...
//	nodeinit: [  1.5s] network: eth0 10.98.20.5/24 gw 10.98.20.1 from DHCP server 10.98.20.1 (1.0s)
//	nodeinit: [  1.7s] root: unpacking cpio gzip from http://.../rootimg.cpio.gz into tmpfs
//	nodeinit: [  2.0s] root: 24 entries, 1.9 MiB unpacked from 1.0 MiB in 0.3s
//	nodeinit: [  2.1s] switching to /newroot (exec /sbin/init as PID 1)
package main
