// Package tftp will own the boot files a node fetches by name: a read-only TFTP server over
// pin/tftp, the same files over HTTP, and per-node boot configs (pxelinux, GRUB2, iPXE)
// generated from a Files interface.
package tftp
