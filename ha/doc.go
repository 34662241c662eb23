// Package ha moves a management node's duties between two (or more) hosts: the virtual IP
// that nodes and admins talk to, the shared data (store, boot root, images, state) and the
// services (database, provd's DHCP/TFTP/HTTP/NFS, DNS). It follows xCAT's shared-data HA
// design (xcatha.py: setup, activate, deactivate with -p shared path, -i NIC, -v virtual IP,
// -m netmask, -t database type), and adds an automatic mode with a lock that only one node
// can hold.
//
// A Manager holds one node's settings. Setup prepares the shared data once. Activate makes
// the node active: database type check, ARP probe of the virtual IP (refused when another
// host answers), the address added by netlink and announced by gratuitous ARP, the VIP's
// host name in the hosts file (and as the host name, optionally), the shared-data links, and
// the services started in order with retries. Any failure undoes every completed step in
// reverse order and reports which step failed (*StepError). Deactivate stops the services
// in reverse order, unlinks, removes the virtual IP and restores the host name.
//
//	m := &ha.Manager{
//		Interface: "eth0",
//		VIP:       netip.MustParsePrefix("10.0.0.10/24"),
//		SharedDir: "/shared",
//		DBType:    ha.PostgreSQL,
//		Services: []ha.Service{
//			&ha.Unit{ServiceName: "database", Unit: "postgresql"},
//			&ha.Process{ServiceName: "provd", Path: "/usr/sbin/provd", Args: []string{"--db", dsn},
//				Health: ha.HTTPCheck("http://10.0.0.10/healthz")},
//		},
//	}
//	if err := m.Activate(ctx); err != nil {
//		log.Fatal(err) // e.g. ha: activate: service provd: ...; undone: link /install, ..., vip
//	}
//
// Services are anything with Name, Start, Stop and Healthy: systemd units (Unit), programs
// this package runs and supervises (Process), servers of this program (InProcess), or
// plain functions (Func).
//
// Auto runs the automatic mode over a Lock, such as PGLock: a lease row with a fencing token
// in the shared PostgreSQL store. The standby takes over within a lease TTL (2 s by
// default) when the active node dies; an active node that cannot renew its lease removes the
// virtual IP at once and finishes deactivating before its lease expires, which is before any
// other node can acquire the lock. The virtual IP carries a kernel lifetime shorter than the
// lease, so a node whose HA process is killed or hangs loses the address by itself.
//
//	a := &ha.Auto{Manager: m, Lock: &ha.PGLock{DSN: dsn}, Name: "mn1"}
//	err := a.Run(ctx) // until ctx ends: then deactivates and releases the lock
//
// Only root can add addresses and send ARP; tests of the real network run in network
// namespaces (see the integration tests), the rest against fakes (package hatest).
package ha
