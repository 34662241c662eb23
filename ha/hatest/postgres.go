package hatest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres returns the URL of a PostgreSQL server for a test's lock and store: the one in
// $PROVKIT_TEST_PG when it is set (scripts/test.sh starts one), or else a throwaway server
// started from Debian's programs (/usr/lib/postgresql/*/bin) on a free loopback port, with
// its data in a new temporary directory; it runs as the postgres user when the test runs as
// root, and is stopped and removed when tb's test ends. Postgres returns "" when there is
// neither: the caller skips, naming $PROVKIT_TEST_PG.
func Postgres(tb testing.TB) string {
	tb.Helper()
	if dsn := os.Getenv("PROVKIT_TEST_PG"); dsn != "" {
		return dsn
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		return ""
	}
	slices.SortFunc(bins, func(a, b string) int { return pgMajor(a) - pgMajor(b) })
	bin := filepath.Dir(bins[len(bins)-1])

	dir, err := os.MkdirTemp("", "provkit-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // initdb and postgres refuse to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("PostgreSQL for the test: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		// No Pdeathsig: it fires when the starting OS thread ends, and tests that enter
		// network namespaces end locked threads.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := command("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		tb.Fatalf("initdb for the test's PostgreSQL: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	srv := command("postgres", "-D", data, "-h", "127.0.0.1", "-p", port, "-k", dir,
		"-c", "fsync=off", "-c", "max_connections=200")
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		tb.Fatalf("PostgreSQL for the test: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	tb.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})
	dsn := "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		cancel()
		if err == nil {
			return dsn
		}
		select {
		case werr := <-exited:
			exited <- werr
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("PostgreSQL for the test exited: %v\n%s", werr, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("PostgreSQL for the test does not answer on %s: %v\n%s", dsn, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pgMajor is the major version in a path such as /usr/lib/postgresql/15/bin/postgres.
func pgMajor(path string) int {
	v := filepath.Base(filepath.Dir(filepath.Dir(path)))
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}
