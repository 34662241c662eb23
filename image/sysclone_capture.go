package image

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultCaptureExclude is what a capture leaves out unless told otherwise: the API
// filesystems' contents, temporary files and caches. The directories themselves stay
// (they are mount points on the clones). Patterns are xCAT exlist patterns.
var DefaultCaptureExclude = []string{
	"/proc/*", "/sys/*", "/dev/*", "/run/*", "/tmp/*", "/var/tmp/*", "/mnt/*", "/media/*",
	"/lost+found", "/swapfile", "/var/lib/dhcp/*.leases", "/var/lib/dhclient/*",
}

// CacheExclude are the package and program caches (CaptureSpec.KeepCaches leaves them in).
var CacheExclude = []string{
	"/var/cache/apt/archives/*.deb", "/var/cache/apt/*.bin", "/var/cache/yum/*", "/var/cache/dnf/*",
	"/var/cache/zypp/*", "/var/cache/man/*", "/root/.cache/*", "/home/*/.cache/*",
}

// HostIdentityExclude are the golden node's own identity: its SSH host keys and machine
// ID (CaptureSpec.KeepIdentity leaves them in). A deploy makes fresh ones for each clone.
var HostIdentityExclude = []string{"/etc/ssh/ssh_host_*", "/etc/machine-id", "/var/lib/dbus/machine-id"}

// CaptureSpec describes a capture from a golden node.
type CaptureSpec struct {
	// Dir receives the tree (xCAT: <installdir>/sysclone/images/<image>/rootimg). Created.
	// When it already holds a capture, only what changed is transferred.
	Dir string
	// Root is the directory captured on the golden node. If empty, "/". Disk filesystems
	// mounted below it are captured too (/boot, /boot/efi, /home ...); /proc, /sys, tmpfs
	// and network filesystems are not.
	Root string
	// Exclude adds exlist patterns ("/opt/scratch/*", "+/var/cache/keep*") to
	// DefaultCaptureExclude (and CacheExclude and HostIdentityExclude unless kept).
	Exclude                  []string
	KeepCaches, KeepIdentity bool
	// NoDefaultExclude drops DefaultCaptureExclude: only Exclude (and the caches and
	// identity unless kept) is left out. For trees that are not a running system.
	NoDefaultExclude bool
	// SSH says how to reach the golden node.
	SSH SSHConfig
	// Agent is the capture agent to run on the golden node: a static Linux executable
	// for its architecture whose "agent" command runs ServeCapture (provkit's nodeinit).
	// It is copied to a private temporary directory there, started, and removed.
	Agent string
	// RemoteTmp is where the agent is put on the golden node. If empty, /var/tmp (it must
	// allow executables).
	RemoteTmp string
	// NoXattrs leaves extended attributes out (ACLs, SELinux labels, capabilities).
	NoXattrs bool
	// Progress receives a progress bar. If nil, quiet.
	Progress io.Writer
	Logger   *slog.Logger
}

// CaptureResult is what a capture returns.
type CaptureResult struct {
	Stats CaptureStats
	Info  GoldenInfo
	// Incremental says the directory held an earlier capture.
	Incremental bool
}

// Excludes returns the patterns a capture with spec uses.
func (s *CaptureSpec) Excludes() []string {
	var ex []string
	if !s.NoDefaultExclude {
		ex = append(ex, DefaultCaptureExclude...)
	}
	if !s.KeepCaches {
		ex = append(ex, CacheExclude...)
	}
	if !s.KeepIdentity {
		ex = append(ex, HostIdentityExclude...)
	}
	return append(ex, s.Exclude...)
}

// Capture copies the golden node's tree into spec.Dir over SSH: it dials the node
// (host key checked against known_hosts), starts the agent there and receives the
// stream. A first capture streams every file; a later one (spec.Dir not empty) compares
// each file's size and time with the local copy and transfers only the files that
// changed, removing what the golden node no longer has. An interrupted capture leaves
// complete files in place (and old versions of files it was replacing), so the next run
// resumes where this one stopped.
func Capture(ctx context.Context, spec CaptureSpec) (CaptureResult, error) {
	if spec.Dir == "" || spec.Agent == "" {
		return CaptureResult{}, errors.New("image: capture: Dir and Agent are required")
	}
	agentBin, err := os.ReadFile(spec.Agent)
	if err != nil {
		return CaptureResult{}, fmt.Errorf("image: capture agent: %w", err)
	}
	client, err := DialSSH(ctx, spec.SSH)
	if err != nil {
		return CaptureResult{}, err
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	tmp := spec.RemoteTmp
	if tmp == "" {
		tmp = "/var/tmp"
	}
	rdir, err := remoteOutput(client, "umask 077 && mktemp -d "+shellQuote(tmp+"/provkit-capture.XXXXXXXX"), nil)
	if err != nil {
		return CaptureResult{}, fmt.Errorf("image: capture: temporary directory on %s: %w", spec.SSH.Addr, err)
	}
	rdir = strings.TrimSpace(rdir)
	if !strings.HasPrefix(rdir, "/") || strings.ContainsAny(rdir, "'\n") {
		return CaptureResult{}, fmt.Errorf("image: capture: mktemp on %s said %q", spec.SSH.Addr, rdir)
	}
	rbin := rdir + "/agent"
	defer func() {
		_, _ = remoteOutput(client, "rm -rf "+shellQuote(rdir), nil)
	}()
	if _, err := remoteOutput(client, "cat > "+shellQuote(rbin)+" && chmod 700 "+shellQuote(rbin), agentBin); err != nil {
		return CaptureResult{}, fmt.Errorf("image: capture: copy the agent to %s:%s: %w", spec.SSH.Addr, rbin, err)
	}
	sess, err := client.NewSession()
	if err != nil {
		return CaptureResult{}, fmt.Errorf("image: capture: %w", err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return CaptureResult{}, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return CaptureResult{}, err
	}
	var stderr bytes.Buffer
	sess.Stderr = &limitedBuffer{b: &stderr, max: 64 << 10}
	if err := sess.Start(shellQuote(rbin) + " agent"); err != nil {
		return CaptureResult{}, fmt.Errorf("image: capture: start the agent: %w", err)
	}
	res, err := captureStream(ctx, stdout, stdin, spec)
	if err != nil {
		sess.Close()
		if ctx.Err() != nil {
			return res, fmt.Errorf("image: capture: %w", ctx.Err())
		}
		if s := strings.TrimSpace(stderr.String()); s != "" {
			err = fmt.Errorf("%w (agent: %s)", err, s)
		}
		return res, err
	}
	stdin.Close()
	if err := sess.Wait(); err != nil {
		return res, fmt.Errorf("image: capture: agent: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return res, nil
}

// captureStream runs the receiving side of a capture over any transport: from is the
// agent's output, to its input.
func captureStream(ctx context.Context, from io.Reader, to io.Writer, spec CaptureSpec) (CaptureResult, error) {
	start := time.Now()
	var res CaptureResult
	inline := emptyDir(spec.Dir)
	res.Incremental = !inline
	rcv, err := newReceiver(spec.Dir, &res.Stats, spec.Logger)
	if err != nil {
		return res, err
	}
	defer rcv.close()
	rcv.inline, rcv.fresh = inline, inline
	rcv.prog = newProgress(spec.Progress, "imgcapture", 0)
	root := spec.Root
	if root == "" {
		root = "/"
	}
	hello, _ := json.Marshal(captureHello{Version: streamVersion, Root: root, Exclude: spec.Excludes(),
		Inline: inline, Xattrs: !spec.NoXattrs, Totals: spec.Progress != nil})
	rcv.reqs = newRequestQueue(to)
	// The hello goes through the queue's writer, before any request.
	rcv.reqs.mu.Lock()
	err = rcv.reqs.fw.frame(frameHello, hello)
	if err == nil {
		err = rcv.reqs.fw.flush()
	}
	rcv.reqs.mu.Unlock()
	if err != nil {
		rcv.reqs.abort()
		return res, fmt.Errorf("image: capture: send hello: %w", err)
	}
	fr := newFrameReader(from)
	typ, p, err := fr.next()
	if err != nil {
		rcv.reqs.abort()
		return res, fmt.Errorf("image: capture: no answer from the agent: %w", err)
	}
	if typ == frameError {
		rcv.reqs.abort()
		return res, fmt.Errorf("image: capture: agent: %s", p)
	}
	var ah agentHello
	if typ != frameHello || json.Unmarshal(p, &ah) != nil || ah.Version != streamVersion {
		rcv.reqs.abort()
		return res, fmt.Errorf("image: capture: the agent answered %q: %w", typ, ErrStream)
	}
	err = rcv.run(ctx, fr, func(b []byte) error {
		if err := json.Unmarshal(b, &res.Info); err != nil {
			return fmt.Errorf("image: capture: node info: %w", err)
		}
		return nil
	})
	if err == nil {
		err = rcv.finish()
	}
	if err != nil {
		rcv.reqs.abort()
	}
	qerr := rcv.reqs.wait()
	res.Stats.SentBytes = rcv.reqs.fw.n
	res.Stats.Elapsed = time.Since(start)
	if err != nil {
		return res, err
	}
	if qerr != nil {
		return res, fmt.Errorf("image: capture: send requests: %w", qerr)
	}
	if rcv.prog != nil {
		rcv.prog.total = max(rcv.prog.total, rcv.prog.done)
		rcv.prog.finish()
	}
	return res, nil
}

// SSHConfig says how to reach a node over SSH.
type SSHConfig struct {
	// Addr is host:port (port 22 if only a host is given).
	Addr string
	// User; if empty, root.
	User string
	// Password, if set, is tried after the keys (xCAT's passwd table, key=system).
	Password string
	// KeyFiles are private keys to try. If empty, ~/.ssh/id_ed25519, id_ecdsa and id_rsa
	// (those that exist and are not passphrase-protected).
	KeyFiles []string
	// NoAgent leaves out the keys of the ssh-agent at $SSH_AUTH_SOCK.
	NoAgent bool
	// KnownHosts are known_hosts files the host key must be in. If empty,
	// ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts. An unknown or changed key fails
	// the connection with ErrHostKey.
	KnownHosts []string
	// HostKeyAlias names the host in known_hosts instead of Addr (ssh's HostKeyAlias).
	HostKeyAlias string
	// Timeout bounds the connection and handshake. If zero, 30 s.
	Timeout time.Duration
	// Dial makes the TCP connection. If nil, a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrHostKey is wrapped by errors about a host key that is not in known_hosts.
var ErrHostKey = errors.New("host key not trusted")

// DialSSH connects and authenticates: public keys (the agent's, then key files), then
// the password. Ciphers are the fastest first (AES-GCM, then ChaCha20-Poly1305).
func DialSSH(ctx context.Context, c SSHConfig) (*ssh.Client, error) {
	addr := c.Addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	user := c.User
	if user == "" {
		user = "root"
	}
	home, _ := os.UserHomeDir()
	kh := c.KnownHosts
	if len(kh) == 0 {
		for _, f := range []string{filepath.Join(home, ".ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"} {
			if _, err := os.Stat(f); err == nil {
				kh = append(kh, f)
			}
		}
	}
	if len(kh) == 0 {
		return nil, fmt.Errorf("image: ssh %s: no known_hosts file to check the host key against (ssh-keyscan the node into ~/.ssh/known_hosts): %w", addr, ErrHostKey)
	}
	check, err := knownhosts.New(kh...)
	if err != nil {
		return nil, fmt.Errorf("image: ssh: known_hosts: %w", err)
	}
	hostName := addr
	if c.HostKeyAlias != "" {
		hostName = c.HostKeyAlias
	}
	cb := func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostName, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			fp := ssh.FingerprintSHA256(key)
			if len(ke.Want) == 0 {
				return fmt.Errorf("%w: %s offers %s key %s, which no known_hosts file (%s) lists (ssh-keyscan it, check the fingerprint, add it)",
					ErrHostKey, hostName, key.Type(), fp, strings.Join(kh, ", "))
			}
			return fmt.Errorf("%w: %s offers %s key %s, but %s:%d has another key for it: the host key CHANGED",
				ErrHostKey, hostName, key.Type(), fp, ke.Want[0].Filename, ke.Want[0].Line)
		}
		return err
	}
	var auths []ssh.AuthMethod
	var signers []ssh.Signer
	if !c.NoAgent {
		if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
			if conn, err := net.Dial("unix", sock); err == nil {
				defer conn.Close()
				if s, err := agent.NewClient(conn).Signers(); err == nil {
					signers = append(signers, s...)
				}
			}
		}
	}
	keys := c.KeyFiles
	if len(keys) == 0 {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			keys = append(keys, filepath.Join(home, ".ssh", k))
		}
	}
	for _, k := range keys {
		b, err := os.ReadFile(k)
		if err != nil {
			if len(c.KeyFiles) > 0 {
				return nil, fmt.Errorf("image: ssh key: %w", err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			if len(c.KeyFiles) > 0 {
				return nil, fmt.Errorf("image: ssh key %s: %w", k, err)
			}
			continue // passphrase-protected: the agent holds it, or nothing does
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		auths = append(auths, ssh.PublicKeys(signers...))
	}
	if c.Password != "" {
		pw := c.Password
		auths = append(auths, ssh.Password(pw), ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			ans := make([]string, len(qs))
			for i := range ans {
				ans[i] = pw
			}
			return ans, nil
		}))
	}
	if len(auths) == 0 {
		return nil, fmt.Errorf("image: ssh %s: no key (agent or ~/.ssh/id_*) and no password to log in with", addr)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	cfg := &ssh.ClientConfig{
		User: user, Auth: auths, HostKeyCallback: cb, Timeout: timeout,
		HostKeyAlgorithms: knownAlgorithms(check, hostName, addr),
	}
	cfg.Ciphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"}
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: timeout}).DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("image: ssh %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("image: ssh %s@%s: %w", user, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// knownAlgorithms returns the host key algorithms known_hosts has for the host, so that
// the server is asked for a key we can check (without it, a server offering ed25519 to a
// known_hosts that lists only its RSA key fails). Nil means the library's defaults.
func knownAlgorithms(check ssh.HostKeyCallback, host, addr string) []string {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		tcp = &net.TCPAddr{}
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := check(host, tcp, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algs []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algs = append(algs, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algs = append(algs, t)
		}
	}
	return algs
}

// remoteOutput runs a shell command on the node (our own fixed commands, quoted) and
// returns its output; stdin, if not nil, is its input.
func remoteOutput(c *ssh.Client, cmd string, stdin []byte) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	if stdin != nil {
		s.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &limitedBuffer{b: &errb, max: 16 << 10}
	if err := s.Run(cmd); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
