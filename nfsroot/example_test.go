package nfsroot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// Two nodes mount the same image and each reads its own host-dependent /etc/hostname. The
// client here is the package's test client; a node's kernel does the same with
// mount -o vers=3,nolock server:/images/compute /mnt.
func ExampleServer() {
	image, _ := os.MkdirTemp("", "image")
	defer os.RemoveAll(image)
	state, _ := os.MkdirTemp("", "state")
	defer os.RemoveAll(state)
	_ = os.MkdirAll(filepath.Join(image, "etc"), 0o755)
	_ = os.MkdirAll(filepath.Join(image, "var/log"), 0o755)
	_ = os.WriteFile(filepath.Join(image, "etc/hostname"), []byte("template\n"), 0o644)
	repo, _ := cdsl.Create(image, "n1", "n2")
	_ = repo.MakeHostDependent("/etc/hostname")
	repo.Close()
	for _, n := range []string{"n1", "n2"} {
		_ = os.WriteFile(filepath.Join(image, "cluster/cdsl", n, "etc/hostname"), []byte(n+"\n"), 0o644)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	s := &Server{
		Exports: []Export{{
			Path: "/images/compute", Root: image, StateDir: state, Writable: []string{"/var"},
			Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		}},
		Views: ViewsFunc(func(_ context.Context, ip netip.Addr) (View, error) {
			switch ip.String() {
			case "127.0.0.1":
				return View{Node: "n1"}, nil
			case "127.0.0.2":
				return View{Node: "n2"}, nil
			}
			return View{}, ErrUnknownClient
		}),
		Listener:  l,
		NoPortmap: true,
		Insecure:  true, // the example's client uses an unprivileged port
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()

	for _, from := range []string{"127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0"} {
		c := exampleClient(l.Addr().String(), from)
		status, root := c.mount("/images/compute")
		if status != mnt3OK {
			fmt.Printf("%s: mount refused (%d)\n", from[:9], status)
			continue
		}
		_, fh := c.walk(root, "etc/hostname")
		_, content := c.readAll(fh)
		fmt.Printf("%s: /etc/hostname = %q\n", from[:9], content)
		c.nc.Close()
	}
	cancel()
	fmt.Println("Serve:", <-done)
	// Output:
	// 127.0.0.1: /etc/hostname = "n1\n"
	// 127.0.0.2: /etc/hostname = "n2\n"
	// 127.0.0.3: mount refused (13)
	// Serve: <nil>
}

// exampleClient dials without a *testing.T (examples have none).
func exampleClient(server, local string) *client {
	la, _ := net.ResolveTCPAddr("tcp", local)
	nc, err := (&net.Dialer{LocalAddr: la}).Dial("tcp", server)
	if err != nil {
		panic(err)
	}
	return &client{t: panicTB{}, nc: nc, br: newReader(nc), creds: xdr.Creds{Flavor: xdr.AuthSys}}
}
