// Package image will own OS images: building a root filesystem (debootstrap, tarball, OCI
// layout), packing it (cpio newc with gzip or zstd, squashfs, tar, an NFS directory),
// extracting kernel and initrd, building the netboot initramfs, and sysclone capture from a
// golden node over SSH with deploy to targets.
package image
