package dhcp

import (
	"fmt"
	"net/netip"
	"strings"
)

// Boot is what a network-booting client is told to load. The server picks one file by the
// client's architecture (option 93) and user class (option 77):
//
//   - user class "iPXE" (or xCAT's "xNBA"), when IPXE is set: IPXE, the node's script URL,
//     so iPXE runs the script instead of chain-loading itself again;
//   - vendor class "HTTPClient" (UEFI HTTP boot, arch 15/16 or 19): HTTP or HTTPARM64,
//     an http:// URL, and option 60 "HTTPClient" in the reply as UEFI requires;
//   - arch 0 (BIOS PXE): BIOS, e.g. "undionly.kpxe" or "pxelinux.0";
//   - arch 6 (UEFI IA32): EFI32; arch 7 or 9 (UEFI x86-64): EFI64; arch 11 (UEFI ARM64): ARM64.
//
// A client that sends neither option 93 nor a "PXEClient" vendor class is not told a file.
// The file goes in the BOOTP file field and in option 67 when the client asks for it (or
// when it is longer than the 127 bytes the field holds).
//
// In a Host, each non-empty field overrides the same field of the Network's Boot.
type Boot struct {
	// NextServer is siaddr, where the client fetches the file by TFTP (noderes.tftpserver).
	NextServer netip.Addr
	// TFTPServerName is option 66. If empty, not sent.
	TFTPServerName string
	// BIOS, EFI32, EFI64 and ARM64 are the files for each firmware.
	BIOS, EFI32, EFI64, ARM64 string
	// HTTP and HTTPARM64 are the URLs for UEFI HTTP boot on x86-64 and ARM64.
	HTTP, HTTPARM64 string
	// IPXE is the URL of the node's iPXE script, answered to iPXE itself.
	IPXE string
	// BOOTP is the file for BOOTP clients (requests without a DHCP message type: IBM
	// POWER firmware's network boot, old BOOTP ROMs), such as xCAT's
	// "boot/grub2/grub2-<node>" for a ppc64 node. If empty, BIOS.
	BOOTP string
	// RootPath is option 17 (an NFS root, or an iSCSI target).
	RootPath string
}

func (b *Boot) validate(where string) error {
	if b.NextServer.IsValid() && !b.NextServer.Is4() {
		return fmt.Errorf("dhcp: %s: next-server %s is not an IPv4 address", where, b.NextServer)
	}
	for _, f := range []struct{ name, v string }{
		{"BIOS", b.BIOS}, {"EFI32", b.EFI32}, {"EFI64", b.EFI64}, {"ARM64", b.ARM64},
		{"HTTP", b.HTTP}, {"HTTPARM64", b.HTTPARM64}, {"IPXE", b.IPXE}, {"BOOTP", b.BOOTP}, {"RootPath", b.RootPath},
		{"TFTPServerName", b.TFTPServerName},
	} {
		if len(f.v) > 255 {
			return fmt.Errorf("dhcp: %s: boot %s is %d bytes long, want at most 255", where, f.name, len(f.v))
		}
		if strings.IndexByte(f.v, 0) >= 0 {
			return fmt.Errorf("dhcp: %s: boot %s contains a NUL byte", where, f.name)
		}
	}
	return nil
}

// merge returns b with every empty field taken from def.
func (b Boot) merge(def *Boot) Boot {
	if !b.NextServer.IsValid() {
		b.NextServer = def.NextServer
	}
	pick := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	pick(&b.TFTPServerName, def.TFTPServerName)
	pick(&b.BIOS, def.BIOS)
	pick(&b.EFI32, def.EFI32)
	pick(&b.EFI64, def.EFI64)
	pick(&b.ARM64, def.ARM64)
	pick(&b.HTTP, def.HTTP)
	pick(&b.HTTPARM64, def.HTTPARM64)
	pick(&b.IPXE, def.IPXE)
	pick(&b.BOOTP, def.BOOTP)
	pick(&b.RootPath, def.RootPath)
	return b
}

// Client architecture types (option 93) of RFC 4578 and the IANA registry that Boot
// answers. Discovery.Arch reports them.
const (
	ArchBIOS         uint16 = 0  // x86 BIOS PXE
	ArchEFIIA32      uint16 = 6  // UEFI IA32
	ArchEFIX64       uint16 = 7  // UEFI x86-64
	ArchEFIBC        uint16 = 9  // UEFI byte code (x86-64 firmware reports it)
	ArchEFIARM64     uint16 = 11 // UEFI ARM64
	ArchEFIX86HTTP   uint16 = 15 // UEFI IA32 HTTP boot
	ArchEFIX64HTTP   uint16 = 16 // UEFI x86-64 HTTP boot
	ArchEFIARM64HTTP uint16 = 19 // UEFI ARM64 HTTP boot
)

const (
	archNone            uint16 = 0xffff // no option 93
	vendorHTTPClient           = "HTTPClient"
	vendorPXEClient            = "PXEClient"
	userClassIPXE              = "iPXE"
	userClassXNBA              = "xNBA"
	maxBootFileFieldLen        = 127
	bootKindNone               = 0
	bootKindTFTP               = 1
	bootKindHTTP               = 2
	bootKindIPXE               = 3
	bootFileOptionCode  uint8  = 67
)

// bootClient is what the boot choice looks at in a request.
type bootClient struct {
	arch        uint16 // archNone when option 93 is absent
	vendorClass []byte
	ipxe        bool // user class iPXE or xNBA
	ipxeEncap   bool // option 175 (iPXE's encapsulated options) in the request
}

// noPXEDHCP is option 175 with iPXE's sub-option 176 (no-pxedhcp) set: do not wait for
// ProxyDHCP offers.
var noPXEDHCP = []byte{176, 1, 1}

// chooseFile returns the file for c and whether the reply must carry vendor class
// "HTTPClient".
func (b *Boot) chooseFile(c *bootClient) (file string, kind int) {
	if c.ipxe && b.IPXE != "" {
		return b.IPXE, bootKindIPXE
	}
	if hasPrefix(c.vendorClass, vendorHTTPClient) {
		switch c.arch {
		case ArchEFIARM64HTTP:
			return b.HTTPARM64, bootKindHTTP
		default:
			return b.HTTP, bootKindHTTP
		}
	}
	switch c.arch {
	case ArchBIOS:
		return b.BIOS, bootKindTFTP
	case ArchEFIIA32:
		return b.EFI32, bootKindTFTP
	case ArchEFIX64, ArchEFIBC:
		return b.EFI64, bootKindTFTP
	case ArchEFIARM64:
		return b.ARM64, bootKindTFTP
	case archNone:
		if hasPrefix(c.vendorClass, vendorPXEClient) {
			return b.BIOS, bootKindTFTP
		}
	}
	return "", bootKindNone
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}
