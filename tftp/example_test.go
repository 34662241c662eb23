package tftp_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"testing/fstest"

	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/bootconf"
)

func ExampleCleanName() {
	for _, name := range []string{"/boot/grub2//grub.cfg", `boot\x64\wdsnbp.com`, "../etc/passwd"} {
		clean, err := tftp.CleanName(name)
		fmt.Printf("%q %v\n", clean, err)
	}
	// Output:
	// "boot/grub2/grub.cfg" <nil>
	// "boot/x64/wdsnbp.com" <nil>
	// "" tftp: name "../etc/passwd" has a .. element: bad file name
}

// Per-node configs generated on request, layered over the static boot files.
func ExampleBootConfigs() {
	nodes := tftp.NodesFunc(func(_ context.Context, q bootconf.Query) (bootconf.Node, error) {
		// provd looks the node up in the cluster store by q.Name, q.MAC or q.IP.
		return bootconf.Node{
			Name:    "node01",
			State:   "netboot debian12-x86_64-compute",
			Kernel:  "xcat/osimage/debian12-x86_64-netboot-compute/kernel",
			Initrd:  "xcat/osimage/debian12-x86_64-netboot-compute/initrd-stateless.gz",
			Cmdline: "NODE=node01",
		}, nil
	})
	static := tftp.FS(fstest.MapFS{"pxelinux.0": {Data: []byte("...")}})
	files := tftp.Overlay(&tftp.BootConfigs{Nodes: nodes}, static)

	f, err := files.Open(context.Background(), netip.MustParseAddr("10.92.0.11"), "pxelinux.cfg/01-52-54-00-12-34-56")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	fmt.Print(string(b))
	// Output:
	// #netboot debian12-x86_64-compute
	// DEFAULT xCAT
	// LABEL xCAT
	//  KERNEL xcat/osimage/debian12-x86_64-netboot-compute/kernel
	//  APPEND initrd=xcat/osimage/debian12-x86_64-netboot-compute/initrd-stateless.gz NODE=node01
	//   IPAPPEND 2
}

func ExampleHTTPHandler() {
	files := tftp.FS(fstest.MapFS{"xcat/osimage/img/kernel": {Data: []byte("bzImage")}})
	srv := httptest.NewServer(&tftp.HTTPHandler{Files: files})
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/xcat/osimage/img/kernel")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(b))
	// Output: 200 OK bzImage
}
