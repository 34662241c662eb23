package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/provkit/provkit/image"
)

// Sysclone states, reported as the deploy goes (image.Deploy's steps), then "installed"
// just before the reboot; the installed system reports "booted" with "nodeinit report".
const StateInstalled = "installed"

// deployMount is where the target's filesystems are mounted during a deploy (/run is a
// tmpfs nodeinit mounts; the initramfs may have no /tmp). Tests change it.
var deployMount = "/run/provkit-deploy"

// deploySysclone is sysclone mode: fetch the image's disk layout, lay the image onto the
// disks (image.Deploy: partition, mkfs, stream over HTTP, boot loader, fix-ups), and
// report each step.
func deploySysclone(ctx context.Context, cfg Config, ni netInfo, rep *reporter, con *console) error {
	// The kernel starts PID 1 without PATH; the deploy tools are in the initramfs's
	// /usr/sbin (image.ProgramFiles).
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	}
	base := strings.TrimSuffix(cfg.SyscloneURL.String(), "/")
	resp, err := getWithRetry(ctx, base+"/"+image.CloneLayout, con)
	if err != nil {
		return fmt.Errorf("sysclone layout: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("sysclone layout %s: %w", base, err)
	}
	var layout image.DiskLayout
	if err := json.Unmarshal(b, &layout); err != nil {
		return fmt.Errorf("sysclone layout %s/%s: %w", base, image.CloneLayout, err)
	}
	spec := image.DeploySpec{
		Layout: layout,
		Mount:  deployMount,
		Image: func(ctx context.Context) (io.ReadCloser, error) {
			resp, err := getWithRetry(ctx, base+"/"+image.CloneImageFile, con)
			if err != nil {
				return nil, err
			}
			now := time.Now()
			cr := &countReader{r: resp.Body, con: con, total: resp.ContentLength, start: now, next: now.Add(5 * time.Second)}
			return struct {
				io.Reader
				io.Closer
			}{cr, resp.Body}, nil
		},
		Fixup: image.NodeFixup{Hostname: cfg.Node, Interface: ni.Iface, MAC: ni.MAC},
		Step: func(state string) {
			con.printf("sysclone: %s", state)
			if state != StateInstalled {
				_ = rep.report(ctx, state)
			}
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	names, err := overrideNames(ctx, base+"/"+image.CloneOverrides)
	if err != nil {
		return err
	}
	for _, name := range names {
		u := base + "/overrides/" + name + ".sysclone"
		spec.Overrides = append(spec.Overrides, func(ctx context.Context) (io.ReadCloser, error) {
			resp, err := getWithRetry(ctx, u, con)
			if err != nil {
				return nil, err
			}
			return resp.Body, nil
		})
	}
	if cfg.StatusURL != nil {
		spec.Fixup.Status = cfg.StatusURL.String()
	}
	if cfg.Disk != "" && len(layout.Disks) > 0 {
		spec.Targets = map[string]string{layout.Disks[0].Device: cfg.Disk}
	}
	res, err := image.Deploy(ctx, spec)
	if err != nil {
		return err
	}
	con.printf("sysclone: %d entries, %d MB on %s, boot loader %q", res.Stats.Entries, res.Stats.DataBytes>>20,
		strings.Join(res.Partitions, " "), res.Bootloader)
	return rep.report(ctx, StateInstalled)
}

// overrideNames reads the image's override list; an image without one (404) has none.
func overrideNames(ctx context.Context, u string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sysclone overrides %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sysclone overrides %s: HTTP %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("sysclone overrides %s: %w", u, err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.ContainsAny(l, "/\\ ") || l == "." || l == ".." {
			return nil, fmt.Errorf("sysclone overrides %s: bad name %q", u, l)
		}
		names = append(names, l)
	}
	return names, nil
}
