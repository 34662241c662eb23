//go:build integration

package tftp_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/tftptest"
)

func run(t *testing.T, cmd *exec.Cmd) ([]byte, error) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("%s: %v\n%s", cmd, err, out)
	}
	return out, err
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, %v; want %d identical bytes", path, len(got), err, len(want))
	}
}

// TestRealClients fetches files from the server with curl (TFTP and HTTP), atftp (with
// RFC 7440 windowsize) and the tftp-hpa client, and runs a traversal corpus through them.
func TestRealClients(t *testing.T) {
	testenv.Require(t, testenv.Program("curl", "atftp", "tftp"))
	root, files := bootRoot(t)
	dir := openDir(t, root)
	addr, rec := serve(t, &tftp.Server{Files: dir})
	host, port := addr.Addr().String(), strconv.Itoa(int(addr.Port()))
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	hs := &http.Server{Handler: http.StripPrefix("/tftpboot", &tftp.HTTPHandler{Files: dir})}
	go hs.Serve(hl)
	defer hs.Close()

	tests := []struct {
		name, file string
		argv       []string
	}{
		{"curl tftp blksize 1468", "big", []string{"curl", "-sSf", "--tftp-blksize", "1468", "-o", "OUT", "tftp://" + addr.String() + "/big"}},
		{"curl tftp default", "xcat/a/b/c/kernel", []string{"curl", "-sSf", "-o", "OUT", "tftp://" + addr.String() + "/xcat/a/b/c/kernel"}},
		{"curl tftp blksize 8192", "three-blocks", []string{"curl", "-sSf", "--tftp-blksize", "8192", "-o", "OUT", "tftp://" + addr.String() + "/three-blocks"}},
		{"curl http", "big", []string{"curl", "-sSf", "-o", "OUT", "http://" + hl.Addr().String() + "/tftpboot/big"}},
		{"atftp windowsize 16", "big", []string{"atftp", "--option", "blksize 1468", "--option", "windowsize 16", "-g", "-r", "big", "-l", "OUT", host, port}},
		{"atftp windowsize 4 tsize", "xcat/a/b/c/kernel", []string{"atftp", "--option", "tsize", "--option", "windowsize 4", "-g", "-r", "xcat/a/b/c/kernel", "-l", "OUT", host, port}},
		{"atftp lockstep", "small", []string{"atftp", "-g", "-r", "small", "-l", "OUT", host, port}},
		{"tftp-hpa", "big", []string{"tftp", "-m", "binary", host, port, "-c", "get", "big", "OUT"}},
		{"tftp-hpa blksize", "xcat/a/b/c/kernel", []string{"tftp", "-m", "binary", host, port, "-c", "get", "xcat/a/b/c/kernel", "OUT"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := filepath.Join(out, strconv.Itoa(i))
			argv := append([]string(nil), tt.argv...)
			for j := range argv {
				if argv[j] == "OUT" {
					argv[j] = o
				}
			}
			if _, err := run(t, exec.CommandContext(ctx, argv[0], argv[1:]...)); err != nil {
				t.Fatal(err)
			}
			sameFile(t, o, files[tt.file])
		})
	}
	var windowed bool
	for _, tr := range rec.all() {
		if tr.WindowSize == 16 && tr.Err == nil && tr.Bytes == int64(len(files["big"])) {
			windowed = true
		}
	}
	if !windowed {
		t.Errorf("no successful transfer with windowsize 16 among %+v", rec.all())
	}

	// Traversal corpus through real clients: never the secret, never a crash.
	for _, name := range []string{"../secret", "/../secret", "..%2fsecret", "escape", "escape-abs", "passwd", "up/secret", "fifo", "a/../../secret"} {
		o := filepath.Join(out, "trav")
		os.Remove(o)
		run(t, exec.CommandContext(ctx, "curl", "-sS", "--path-as-is", "-o", o, "tftp://"+addr.String()+"/"+name))
		run(t, exec.CommandContext(ctx, "atftp", "-g", "-r", name, "-l", o+"2", host, port))
		run(t, exec.CommandContext(ctx, "curl", "-sS", "--path-as-is", "-o", o+"3", "http://"+hl.Addr().String()+"/tftpboot/"+name))
		for _, f := range []string{o, o + "2", o + "3"} {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("SECRET")) {
				t.Errorf("%s: client got the secret through %q", f, name)
			}
		}
	}
	if _, _, err := get(t, addr, "small", tftptest.Options{BlockSize: 1468}); err != nil {
		t.Errorf("server broken after the corpus: %v", err)
	}
}

// TestNetnsServe runs the server on a socket opened inside a network namespace while
// Serve runs on the host: transfer sockets must be opened in that namespace too. Clients
// (curl, atftp with windowsize) run in a second namespace across a veth pair.
func TestNetnsServe(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "curl", "atftp"))
	srvNS, cliNS := netns.New(t, "ts"), netns.New(t, "tc")
	netns.Veth(t, srvNS, "eth0", "10.92.0.1/24", cliNS, "eth0", "10.92.0.2/24")
	root, files := bootRoot(t)
	var conn net.PacketConn
	must(t, srvNS.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", "10.92.0.1:69")
		return err
	}))
	rec := &recorder{}
	testenv.NoGoroutineLeak(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&tftp.Server{Files: openDir(t, root), Conn: conn, OnTransfer: rec.add}).Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()
	out := t.TempDir()
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	for i, argv := range [][]string{
		{"curl", "-sSf", "--tftp-blksize", "1468", "-o", "OUT", "tftp://10.92.0.1/big"},
		{"atftp", "--option", "blksize 1468", "--option", "windowsize 16", "-g", "-r", "big", "-l", "OUT", "10.92.0.1", "69"},
	} {
		o := filepath.Join(out, fmt.Sprint(i))
		for j := range argv {
			if argv[j] == "OUT" {
				argv[j] = o
			}
		}
		if _, err := run(t, cliNS.Command(cctx, argv...)); err != nil {
			t.Fatalf("%v in %s: %v", argv, cliNS.Name, err)
		}
		sameFile(t, o, files["big"])
	}
	for _, tr := range rec.all() {
		if tr.Client.Addr().String() != "10.92.0.2" || tr.Err != nil {
			t.Errorf("record %+v: want a success from 10.92.0.2", tr)
		}
	}
}
