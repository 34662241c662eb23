// Package image owns OS images: building a root filesystem (genimage), packing it for
// the nodes (packimage), the kernel and the netboot initramfs that boot it.
//
// Build a tree from debootstrap, a rootfs tarball, an OCI layout or `docker save`
// tarball, or an existing directory, with extra packages and postinstall hooks:
//
//	_, err := image.Build(ctx, image.Spec{
//		Dir:         "/install/netboot/bookworm/x86_64/compute/rootimg", // xCAT rootimgdir/rootimg
//		Source:      image.Debootstrap{Suite: "bookworm"},              // mirror from /etc/apt
//		Packages:    []string{"linux-image-amd64", "openssh-server"},   // xCAT pkglist
//		PostInstall: []string{"/install/custom/compute.postinstall"},   // run as hook <root>
//	})
//
// Pack it: a cpio newc archive (the format the kernel and nodeinit unpack) compressed
// with parallel gzip or zstd, a tar (it also keeps xattrs), a squashfs (mksquashfs), or
// the directory itself for NFS. Packing streams: memory stays bounded (measured under
// 100 MB) whatever the size of the tree.
//
//	st, err := image.PackFile(ctx, root, "/install/netboot/.../rootimg.cpio.gz", image.PackOptions{
//		Format: image.CPIO, Compression: image.Gzip,
//		Exclude:  []string{"./usr/share/man*", "./usr/share/locale*", "+./usr/share/locale/C*"}, // exlist
//		Progress: image.TerminalProgress(os.Stderr),
//	})
//
// Make the boot files: the kernel from the image (or a linux-image .deb) and an
// initramfs with nodeinit (examples/nodeinit), the NIC and filesystem modules, and their
// dependencies:
//
//	boot, err := image.MakeBoot(ctx, image.BootSpec{
//		Dir: "/tftpboot/xcat/osimage/bookworm-compute", ImageRoot: root, Init: "nodeinit",
//		Modules: append(image.VirtioNetModules(), "e1000e", "nfsv3"), // xCAT netdrivers
//	})
//
// Unpack reads a packed image back (cpio or tar; gzip, zstd, xz or none, detected),
// safely: names resolve inside the target as if it were the root.
//
// Sysclone (xCAT's imgcapture -t sysclone, after SystemImager): capture a tuned golden
// node's disk over SSH, then lay it onto other nodes' disks. Capture copies a static
// agent (nodeinit's "agent" command) to the node, checks the host key against
// known_hosts, and streams the tree with owners, modes, links, hard links, device nodes,
// holes and xattrs, plus the node's partition tables (sfdisk), lsblk and mounts. A
// second capture into the same directory moves only the files whose size or time
// changed, and an interrupted one resumes:
//
//	res, err := image.Capture(ctx, image.CaptureSpec{
//		Dir: "/install/sysclone/images/gold/rootimg", Agent: "/usr/lib/provkit/nodeinit",
//		Exclude: []string{"/scratch/*"},
//		SSH:     image.SSHConfig{Addr: "10.0.0.5:22", Password: passwdTableSystem},
//	})
//	layout, err := image.LayoutFromInfo(res.Info) // saved as layout.json
//	_, err = image.PackClone(ctx, "/install/sysclone/images/gold/rootimg", w) // rootimg.sysclone, served over HTTP
//
// Deploy runs on the node (nodeinit's sysclone mode): it refuses a disk smaller than
// the golden one before writing anything, partitions to the recorded layout (the last
// partition grows), makes the filesystems with the golden UUIDs and labels, lays the
// image, installs the boot loader with the image's own extlinux or grub-install (and
// the golden MBR boot code), and gives the clone its own hostname, machine-id, SSH host
// keys and network configuration:
//
//	_, err := image.Deploy(ctx, image.DeploySpec{Layout: layout, Image: openOverHTTP,
//		Fixup: image.NodeFixup{Hostname: "n7", Interface: "eth0", Status: statusURL}})
//
// The package takes plain structs and imports no other provkit package: provd and
// provctl map xCAT's osimage and linuximage tables (rootimgdir, pkglist, exlist,
// postinstall, netdrivers, kernelver, provmethod) onto Spec, PackOptions and BootSpec.
package image
