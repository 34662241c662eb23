//go:build integration

package image

import (
	"context"
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
	"github.com/provkit/provkit/internal/sshdtest"
	"github.com/provkit/provkit/internal/testenv"
)

// sshdNode is a real OpenSSH server in a network namespace: the golden node of a test.
type sshdNode struct {
	ns *netns.NS
	*sshdtest.Server
}

// startSSHD runs sshd in a new namespace on 10.98.<third>.1:22.
func startSSHD(t *testing.T, third int) *sshdNode {
	t.Helper()
	ns := netns.New(t, "scl")
	ns.MustIP(t, "addr", "add", fmt.Sprintf("10.98.%d.1/24", third), "dev", "lo")
	return &sshdNode{ns: ns, Server: sshdtest.Start(t, ns, fmt.Sprintf("10.98.%d.1:22", third))}
}

func (n *sshdNode) config() SSHConfig {
	return SSHConfig{Addr: n.Addr, KeyFiles: []string{n.KeyFile}, KnownHosts: []string{n.KnownHosts}, NoAgent: true,
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
	otherKey := sshdtest.WriteKey(t, filepath.Join(t.TempDir(), "k"))
	host, _, _ := net.SplitHostPort(node.Addr)
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
