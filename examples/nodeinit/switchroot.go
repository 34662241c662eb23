package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The booted watcher: a copy of nodeinit started just before the exec of the new init.
// It sees the exec happen (PID 1's executable changes) and only then reports "booted".
const (
	envWatch    = "PROVKIT_NODEINIT_WATCH" // "1" in the watcher
	envWatchOld = "PROVKIT_NODEINIT_EXE"   // PID 1's executable before the exec
	envWatchURL = "PROVKIT_NODEINIT_STATUS"
	envWatchFor = "PROVKIT_NODEINIT_NODE"
)

// switchRoot makes dir the root and executes init in it as PID 1 (it returns only on
// failure). It is u-root's mount.SwitchRoot in steps, because the booted watcher must
// start between the chroot and the exec. It moves /dev, /proc, /sys and /run into the new root, moves the new root
// onto /, chroots, frees the initramfs's memory, starts the booted watcher and
// executes init with args. If the watcher cannot start, "booted" is reported just
// before the exec instead.
func switchRoot(dir, init string, args []string, rep *reporter, con *console) error {
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		dst := filepath.Join(dir, m)
		if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				con.warn("switch_root: %s missing in the new root and cannot be made (%v); left behind", m, err)
				continue
			}
		}
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch_root: move %s: %w", m, err)
		}
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	old, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if err := unix.Mount(dir, "/", "", unix.MS_MOVE, ""); err != nil {
		unix.Close(old)
		return fmt.Errorf("switch_root: move %s to /: %w", dir, err)
	}
	if err := unix.Chroot("."); err != nil {
		unix.Close(old)
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		unix.Close(old)
		return fmt.Errorf("switch_root: %w", err)
	}
	freed := deleteTree(old)
	unix.Close(old)
	con.debugf("switch_root: freed %d files of the initramfs", freed)

	watcher := startWatcher(rep, con)
	if watcher == nil {
		_ = rep.report(context.Background(), StateBooted)
	}
	con.printf("switching to %s (exec %s as PID 1)", dir, init)
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PROVKIT_NODEINIT_") {
			env = append(env, e)
		}
	}
	err = unix.Exec(init, append([]string{init}, args...), env)
	// Still here: the exec failed, and the new root is already ours.
	if watcher != nil {
		_ = watcher.Process.Kill()
		_, _ = watcher.Process.Wait()
	}
	return fmt.Errorf("exec %s: %w", init, err)
}

// deleteTree removes the contents of the directory fd, without crossing into other
// filesystems (the initramfs is a rootfs: deleting it gives its memory back).
func deleteTree(fd int) int {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0
	}
	dev := st.Dev
	n := 0
	var walk func(dfd int)
	walk = func(dfd int) {
		// Read the names through a dup: the *os.File closes what it wraps.
		d2, err := unix.Dup(dfd)
		if err != nil {
			return
		}
		f := os.NewFile(uintptr(d2), "dir")
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, name := range names {
			var cst unix.Stat_t
			if err := unix.Fstatat(dfd, name, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil || cst.Dev != dev {
				continue
			}
			if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
				cfd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					continue
				}
				walk(cfd)
				unix.Close(cfd)
				if unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR) == nil {
					n++
				}
				continue
			}
			if unix.Unlinkat(dfd, name, 0) == nil {
				n++
			}
		}
	}
	walk(fd)
	return n
}

// startWatcher starts the booted watcher (nodeinit again, from /proc/self/exe: the file
// itself is gone with the initramfs, the running image is not).
func startWatcher(rep *reporter, con *console) *exec.Cmd {
	if rep.url == "" {
		return nil
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		con.warn("booted watcher: %v; reporting booted before the exec", err)
		return nil
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"nodeinit-booted"}
	cmd.Env = []string{envWatch + "=1", envWatchOld + "=" + exe, envWatchURL + "=" + rep.url, envWatchFor + "=" + rep.node}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		con.warn("booted watcher: %v; reporting booted before the exec", err)
		return nil
	}
	return cmd
}

// runWatcher is the watcher's main: wait until PID 1 runs another program than
// nodeinit (the exec of the new init happened), then report "booted". It gives up
// silently after two minutes: if the exec failed, nodeinit reports the failure itself.
func runWatcher() int {
	old := os.Getenv(envWatchOld)
	con := &console{w: os.Stdout, start: time.Now()}
	rep := &reporter{url: os.Getenv(envWatchURL), node: os.Getenv(envWatchFor), con: con,
		attempts: 5, backoff: time.Second, client: newHTTPClient()}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		cur, err := os.Readlink("/proc/1/exe")
		if err == nil && cur != old {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := rep.report(ctx, StateBooted); err != nil {
				return 1
			}
			return 0
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EACCES) {
			con.warn("booted watcher: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 1
}
