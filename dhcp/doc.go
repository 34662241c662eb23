// Package dhcp will own provkit's DHCPv4 server: reservations from a Hosts interface, a
// dynamic pool for discovery, persistent crash-safe leases, PXE/iPXE/UEFI/HTTP-boot answers
// chosen by client architecture and user class, relay (giaddr, option 82), and rendering of
// an ISC dhcpd.conf for sites that keep ISC.
package dhcp
