package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/provkit/provkit/image"
)

// runImage carries out a discovery chain's runimage=<URL> step as xCAT's genesis does:
// it fetches the archive (tar, gzip'd or not), unpacks it into a fresh directory under
// base and runs its runme.sh there with the initramfs's shell, the output on the
// console and PROVKIT_NODE set to the node's name. An error names the URL and what
// failed: the fetch, the archive, a missing runme.sh or its exit status.
func runImage(ctx context.Context, client *http.Client, url, shell, base, node string, con *console) error {
	if shell == "" {
		return errors.New("no shell in the initramfs to run runme.sh (add busybox to it)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(base, "runimage-")
	if err != nil {
		return err
	}
	st, err := image.Unpack(ctx, resp.Body, dir, image.UnpackOptions{})
	if err != nil {
		return fmt.Errorf("unpack %s: %w", url, err)
	}
	con.printf("runimage: %s: %d entries unpacked in %s", url, st.Entries, dir)
	script := filepath.Join(dir, "runme.sh")
	if fi, err := os.Lstat(script); err != nil || !fi.Mode().IsRegular() {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s has no runme.sh at its top", url)
		}
		return err
	}
	args := []string{"runme.sh"}
	if strings.HasSuffix(shell, "busybox") {
		args = []string{"sh", "runme.sh"}
	}
	cmd := exec.CommandContext(ctx, shell, args...)
	cmd.Dir = dir
	out := consoleWriter{con}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin:/bbin", "HOME=/", "PROVKIT_NODE=" + node}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runme.sh of %s: %w", url, err)
	}
	return nil
}

// consoleWriter passes a command's output to the console, between nodeinit's lines.
type consoleWriter struct{ c *console }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.w.Write(p)
}
