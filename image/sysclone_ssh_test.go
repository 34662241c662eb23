package image

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer accepts SSH handshakes on loopback: the password "s3cret" for root, or the
// public key allowed. It returns the address and a known_hosts file listing its key.
func sshServer(t *testing.T, allowed ssh.PublicKey) (string, string) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	conf := &ssh.ServerConfig{
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if c.User() == "root" && string(pw) == "s3cret" {
				return nil, nil
			}
			return nil, errors.New("no")
		},
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if allowed != nil && string(k.Marshal()) == string(allowed.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("no")
		},
	}
	conf.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, chans, reqs, err := ssh.NewServerConn(c, conf)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "test server")
				}
			}()
		}
	}()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(l.Addr().String())}, signer.PublicKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return l.Addr().String(), kh
}

func TestDialSSHAuth(t *testing.T) {
	_, agentPriv, _ := ed25519.GenerateKey(rand.Reader)
	agentSigner, _ := ssh.NewSignerFromKey(agentPriv)
	addr, kh := sshServer(t, agentSigner.PublicKey())

	// An ssh-agent with the allowed key, at $SSH_AUTH_SOCK.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	al, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: agentPriv}); err != nil {
		t.Fatal(err)
	}
	adone := make(chan struct{})
	go func() {
		defer close(adone)
		for {
			c, err := al.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { al.Close(); <-adone })
	emptyKH := filepath.Join(t.TempDir(), "empty_known_hosts")
	os.WriteFile(emptyKH, nil, 0o644)

	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		agent bool
		cfg   SSHConfig
		err   error // nil: must connect
	}{
		{"password from the passwd table", false, SSHConfig{Addr: addr, Password: "s3cret", KnownHosts: []string{kh}, NoAgent: true}, nil},
		{"wrong password", false, SSHConfig{Addr: addr, Password: "guess", KnownHosts: []string{kh}, NoAgent: true}, errAny},
		{"the agent's key", true, SSHConfig{Addr: addr, KnownHosts: []string{kh}}, nil},
		{"agent left out", true, SSHConfig{Addr: addr, KnownHosts: []string{kh}, NoAgent: true}, errAny},
		{"unknown host key", false, SSHConfig{Addr: addr, Password: "s3cret", KnownHosts: []string{emptyKH}, NoAgent: true}, ErrHostKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir()) // no ~/.ssh keys
			if tc.agent {
				t.Setenv("SSH_AUTH_SOCK", sock)
			} else {
				t.Setenv("SSH_AUTH_SOCK", "")
			}
			c, err := DialSSH(ctx, tc.cfg)
			if c != nil {
				c.Close()
			}
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("DialSSH: %v", err)
			case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Fatalf("DialSSH = %v, want %v", err, tc.err)
			}
		})
	}
}

var errAny = errors.New("any error")
