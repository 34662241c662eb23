// Package nfsroot will own an NFSv3 server over go-nfs that exports images to diskless
// nodes: a read-only base, per-node writable paths, per-client views resolved from the
// client address (CDSL paths included), restart-stable file handles and export access control.
package nfsroot
