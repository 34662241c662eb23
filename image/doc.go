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
// The package takes plain structs and imports no other provkit package: provd and
// provctl map xCAT's osimage and linuximage tables (rootimgdir, pkglist, exlist,
// postinstall, netdrivers, kernelver, provmethod) onto Spec, PackOptions and BootSpec.
package image
