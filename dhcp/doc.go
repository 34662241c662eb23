// Package dhcp is provkit's embedded DHCPv4 server: it PXE-boots a cluster from the
// cluster's own tables, and it is faster than Kea on the same machine.
//
//   - Reservations come from a Hosts interface (by MAC, and by client identifier or address
//     when the implementation offers it); HostTable is a ready in-memory one.
//   - Clients without a reservation are ignored (DenyUnknown, as xCAT's "deny
//     unknown-clients") or given an address from the network's dynamic ranges, with an
//     OnDiscover callback so node discovery can record them.
//   - Leases are written to an append-only journal (LeaseFile) before the client is
//     answered: after kill -9 at any moment no address is handed to two clients and no
//     acknowledged lease is forgotten. One lease per MAC: the PXE ROM and then iPXE on the
//     same node get the same address.
//   - Boot answers are chosen by client architecture (option 93) and user class (option 77):
//     BIOS, UEFI x86-64/ARM64, UEFI HTTP boot, and iPXE's own script URL (see Boot).
//     Replies to iPXE carry no-pxedhcp (option 175.176 = 1), as xCAT's dhcpd.conf does, so
//     that iPXE does not wait a second for ProxyDHCP offers; a network or host option 175
//     replaces it (for sites with a ProxyDHCP server).
//   - BOOTP clients (RFC 951 and 1542: no DHCP message type; IBM POWER firmware's network
//     boot) with a reservation get their address, Boot.BOOTP (else BIOS) and the basic
//     options in a 300-byte reply, as ISC dhcpd answers a fixed-address host; BOOTP clients
//     without one get nothing (no dynamic-bootp). DenyBOOTP turns BOOTP off.
//   - Relayed requests (giaddr) are answered through the relay, option 82 echoed, the subnet
//     chosen by giaddr or link selection.
//   - The serve loop is our own over the insomniacslk/dhcp codec: a bounded pool of workers,
//     each with its own buffers; the arrival interface comes from IP_PKTINFO, and replies to
//     clients without an address go to their MAC through a packet socket (see Socket).
//
// RouterAdvertiser answers IPv6 router solicitations on the boot interface, so that iPXE
// does not wait for IPv6 autoconfiguration. RenderISC writes xCAT's dhcpd.conf (`makedhcp
// -n`) for sites that keep ISC dhcpd.
//
// Usage:
//
//	hosts := &dhcp.HostTable{}
//	hosts.Put(dhcp.Host{Name: "node01", MAC: mac, IP: netip.MustParseAddr("10.0.0.11"),
//		Boot: dhcp.Boot{IPXE: "http://10.0.0.1/boot/node01.ipxe"}})
//	srv := &dhcp.Server{
//		Networks: []dhcp.Network{{
//			Prefix:    netip.MustParsePrefix("10.0.0.0/16"),
//			Interface: "eth1",
//			Routers:   []netip.Addr{netip.MustParseAddr("10.0.0.254")},
//			Boot:      dhcp.Boot{BIOS: "undionly.kpxe", EFI64: "ipxe.efi"},
//		}},
//		Hosts:       hosts,
//		DenyUnknown: true,
//		LeaseFile:   "/var/lib/provkit/dhcp.leases",
//		Logger:      slog.Default(),
//	}
//	err := srv.Serve(ctx) // until ctx is done; nil on a clean stop
package dhcp
