package bootconf_test

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/provkit/provkit/tftp/bootconf"
)

func ExampleRender() {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	n := bootconf.Node{
		Name: "node01", State: "boot", MAC: mac, IP: netip.MustParseAddr("10.92.0.11"),
	}
	b, _ := bootconf.Render(bootconf.GRUB2, n)
	fmt.Printf("%q\n", b)
	fmt.Println(bootconf.Names(bootconf.GRUB2, n))
	// Output:
	// "#boot\nset timeout=5\n"
	// [boot/grub2/node01 boot/grub2/grub.cfg-01-52-54-00-12-34-56 boot/grub2/grub.cfg-0A5C000B]
}

func ExampleParseName() {
	for _, name := range []string{"pxelinux.cfg/01-52-54-00-12-34-56", "pxelinux.cfg/0A5C000B", "xcat/xnba/nodes/node01.uefi", "pxelinux.cfg/default"} {
		req, ok := bootconf.ParseName(name)
		fmt.Println(name, "->", req.Format, req.Query, ok)
	}
	// Output:
	// pxelinux.cfg/01-52-54-00-12-34-56 -> pxelinux mac 52:54:00:12:34:56 true
	// pxelinux.cfg/0A5C000B -> pxelinux ip 10.92.0.11 true
	// xcat/xnba/nodes/node01.uefi -> xnba-uefi node node01 true
	// pxelinux.cfg/default -> Format(0) node  false
}
