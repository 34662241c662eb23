// Package cdsl will own context-dependent symlink infrastructure in a shared root: create it,
// make paths host-dependent or shared, list and check it, resolve a path for a node, and
// produce the bind-mount plan a node applies at boot.
package cdsl
