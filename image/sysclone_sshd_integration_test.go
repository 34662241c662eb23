//go:build integration

package image

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
)

// sshdNode is a real OpenSSH server in a network namespace: the golden node of a test.
type sshdNode struct {
	ns         *netns.NS
	addr       string // "10.98.128.1:22"
	keyFile    string // the client's private key
	knownHosts string
	hostPub    ssh.PublicKey
}

// writeKey writes an ed25519 private key in OpenSSH format and returns its public key.
func writeKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "provkit-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// startSSHD runs sshd -D in a new namespace on 10.98.<third>.1:22, with a host key and
// an authorized client key made for the test, and a known_hosts file that lists it.
func startSSHD(t *testing.T, third int) *sshdNode {
	t.Helper()
	dir := t.TempDir()
	n := &sshdNode{ns: netns.New(t, "scl"), addr: fmt.Sprintf("10.98.%d.1:22", third),
		keyFile: filepath.Join(dir, "id_ed25519"), knownHosts: filepath.Join(dir, "known_hosts")}
	n.ns.MustIP(t, "addr", "add", fmt.Sprintf("10.98.%d.1/24", third), "dev", "lo")
	n.hostPub = writeKey(t, filepath.Join(dir, "host_key"))
	client := writeKey(t, n.keyFile)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(client), 0o600); err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(n.addr)
	if err := os.WriteFile(n.knownHosts, []byte(host+" "+string(ssh.MarshalAuthorizedKey(n.hostPub))), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("ListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\nPermitRootLogin prohibit-password\n"+
		"StrictModes no\nUsePAM no\nPasswordAuthentication no\nPidFile %s\nLogLevel ERROR\n",
		n.addr, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.ns.Command(ctx, "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("sshd output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.ns.Do(func() error {
			c, err := net.DialTimeout("tcp", n.addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return n
		}
		select {
		case <-done:
			t.Fatalf("sshd exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s: %v", n.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *sshdNode) config() SSHConfig {
	return SSHConfig{Addr: n.addr, KeyFiles: []string{n.keyFile}, KnownHosts: []string{n.knownHosts}, NoAgent: true,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := n.ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}
}

// buildAgent builds nodeinit, whose "agent" command is the capture agent.
func buildAgent(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "nodeinit")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/provkit/provkit/examples/nodeinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nodeinit: %v\n%s", err, b)
	}
	return out
}

// TestNetnsSSHCapture captures a golden tree from a real OpenSSH server and compares
// every entry; then changes the golden tree, captures again and checks that only the
// changes moved.
func TestNetnsSSHCapture(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "/usr/sbin/sshd", "go", "setfacl"))
	node := startSSHD(t, 128)
	agentBin := buildAgent(t)
	golden := t.TempDir()
	makeGolden(t, golden)
	// ACLs and an SELinux label, as a RHEL golden node has them.
	for _, c := range [][]string{
		{"setfacl", "-m", "u:1000:rw,g:42:r", filepath.Join(golden, "etc/sshd_config-acl")},
		{"setfacl", "-d", "-m", "u:1000:rwx", filepath.Join(golden, "home/u")},
	} {
		if strings.HasSuffix(c[len(c)-1], "-acl") {
			if err := os.WriteFile(c[len(c)-1], []byte("acl\n"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	if err := unix.Lsetxattr(filepath.Join(golden, "etc/hostname"), "security.selinux", []byte("system_u:object_r:etc_t:s0\x00"), 0); err != nil {
		t.Fatal(err)
	}
	touchAll(t, golden)
	dir := filepath.Join(t.TempDir(), "rootimg")
	spec := CaptureSpec{Dir: dir, Root: golden, SSH: node.config(), Agent: agentBin}

	ctx := context.Background()
	res, err := Capture(ctx, spec)
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	want := snapshotTree(t, golden, excludedInTest...)
	if diff := cmp.Diff(want, snapshotTree(t, dir)); diff != "" {
		t.Fatalf("captured tree differs (-golden +captured):\n%s", diff)
	}
	if res.Info.Hostname == "" || res.Info.Kernel == "" {
		t.Errorf("node info: %+v", res.Info)
	}
	t.Logf("full capture over ssh: %d entries, %d files, %d data bytes, %d on the wire, %s", res.Stats.Entries,
		res.Stats.Files, res.Stats.DataBytes, res.Stats.WireBytes, res.Stats.Elapsed)

	// Change one big file, add one, remove one; the re-capture moves just those bytes.
	big := strings.Repeat("changed ", 1<<14)
	if err := os.WriteFile(filepath.Join(golden, "usr/lib/app/data.bin"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(golden, "etc/new.conf"), []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(golden, "home/u/.profile")); err != nil {
		t.Fatal(err)
	}
	res2, err := Capture(ctx, spec)
	if err != nil {
		t.Fatalf("re-capture: %v", err)
	}
	want = snapshotTree(t, golden, excludedInTest...)
	if diff := cmp.Diff(want, snapshotTree(t, dir)); diff != "" {
		t.Fatalf("re-captured tree differs (-golden +captured):\n%s", diff)
	}
	if wantBytes := int64(len(big) + len("new\n")); res2.Stats.DataBytes != wantBytes || res2.Stats.Changed != 2 || res2.Stats.Deleted != 1 {
		t.Errorf("re-capture: %d files, %d data bytes, %d deleted; want 2 files, %d bytes, 1 deleted", res2.Stats.Changed, res2.Stats.DataBytes, res2.Stats.Deleted, wantBytes)
	}
	// The file list costs some bytes per entry; the data of unchanged files is not sent.
	if limit := res2.Stats.DataBytes + 100*res2.Stats.Entries + 64<<10; res2.Stats.WireBytes > limit {
		t.Errorf("re-capture received %d bytes, more than the changes and the file list (%d)", res2.Stats.WireBytes, limit)
	}
	t.Logf("incremental capture over ssh: %d changed, %d data bytes, %d on the wire (full: %d), %s",
		res2.Stats.Changed, res2.Stats.DataBytes, res2.Stats.WireBytes, res.Stats.WireBytes, res2.Stats.Elapsed)
}

// TestNetnsSSHHostKeyChecked refuses a golden node whose host key is not in
// known_hosts, or differs from the one there, before logging in.
func TestNetnsSSHHostKeyChecked(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "/usr/sbin/sshd"))
	node := startSSHD(t, 129)
	ctx := context.Background()
	cfg := node.config()
	c, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("DialSSH with the right known_hosts: %v", err)
	}
	c.Close()

	empty := filepath.Join(t.TempDir(), "known_hosts")
	other := filepath.Join(t.TempDir(), "known_hosts")
	otherKey := writeKey(t, filepath.Join(t.TempDir(), "k"))
	host, _, _ := net.SplitHostPort(node.addr)
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(host+" "+string(ssh.MarshalAuthorizedKey(otherKey))), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"unknown", empty, "no known_hosts file"},
		{"changed", other, "CHANGED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := node.config()
			cfg.KnownHosts = []string{tc.file}
			_, err := DialSSH(ctx, cfg)
			if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DialSSH = %v, want ErrHostKey saying %q", err, tc.want)
			}
		})
	}
}

// touchAll gives every entry of a tree the same fixed time again (after changes).
func touchAll(t *testing.T, root string) {
	t.Helper()
	tm := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}
