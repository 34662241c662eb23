// Package sshdtest runs a real OpenSSH server (/usr/sbin/sshd) for tests, with a host
// key and an authorized client key made for the test and a known_hosts file that lists
// the server: the golden node of the sysclone capture tests.
package sshdtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/provkit/provkit/internal/netns"
)

// Server is a running sshd; it is stopped when the test ends, and its output is logged if
// the test failed.
type Server struct {
	Addr       string        // host:port it listens on
	KeyFile    string        // the authorized client's private key (OpenSSH format)
	KnownHosts string        // a known_hosts file listing the server's host key
	HostKey    ssh.PublicKey // the server's host key
}

// Port is the port of Addr.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// WriteKey writes a new ed25519 private key in OpenSSH format to path and returns its
// public key.
func WriteKey(tb testing.TB, path string) ssh.PublicKey {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "provkit-test")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		tb.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return sp
}

// Start runs sshd -D listening on addr, inside ns when ns is not nil. An empty addr means
// 127.0.0.1 on a free port (of this machine's loopback; ns must be nil then).
func Start(tb testing.TB, ns *netns.NS, addr string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	s := &Server{Addr: addr, KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	s.HostKey = WriteKey(tb, filepath.Join(dir, "host_key"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(WriteKey(tb, s.KeyFile)), 0o600); err != nil {
		tb.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	pattern := host
	if port != "22" {
		pattern = fmt.Sprintf("[%s]:%s", host, port)
	}
	if err := os.WriteFile(s.KnownHosts, []byte(pattern+" "+string(ssh.MarshalAuthorizedKey(s.HostKey))), 0o644); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf("ListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\nPermitRootLogin prohibit-password\n"+
		"StrictModes no\nUsePAM no\nPasswordAuthentication no\nPidFile %s\nLogLevel ERROR\n",
		addr, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	argv := []string{"/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config")}
	var cmd *exec.Cmd
	if ns != nil {
		cmd = ns.Command(ctx, argv...)
	} else {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		cancel()
		<-done
		if tb.Failed() {
			tb.Logf("sshd output:\n%s", out.String())
		}
	})
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if ns != nil {
			err = ns.Do(dial)
		} else {
			err = dial()
		}
		if err == nil {
			return s
		}
		select {
		case <-done:
			tb.Fatalf("sshd exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sshd does not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
