// Package ha will own management-node failover: virtual IP probe, add and remove, shared-data
// links, ordered service start and stop with retries and undo, and a lock so that only one
// management node is active.
package ha
