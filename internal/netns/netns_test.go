package netns_test

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
)

func TestVethAndDo(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip"))
	a, b := netns.New(t, "ta"), netns.New(t, "tb")
	netns.Veth(t, a, "eth0", "10.200.0.1/24", b, "eth0", "10.200.0.2/24")

	var ln net.Listener
	if err := a.Do(func() (err error) {
		ln, err = net.Listen("tcp", "10.200.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("hello"))
			c.Close()
		}
	}()
	var out []byte
	if err := b.Do(func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		out, err = io.ReadAll(c)
		return err
	}); err != nil {
		t.Fatalf("dial from %s: %v", b.Name, err)
	}
	if !strings.Contains(string(out), "hello") {
		t.Fatalf("read %q from the other namespace, want hello", out)
	}
	// The host namespace must not reach the test addresses.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatalf("host namespace reached %s: namespaces leak", ln.Addr())
	}
}
