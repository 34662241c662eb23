package ha

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a Service that runs a program, such as provd or postgres, supervised by this
// package: Start runs it in a process group of its own, Healthy tells whether it still runs
// (and, with Health, serves), Stop sends StopSignal to the group and SIGKILL after
// StopTimeout.
//
// Without PIDFile the program is this process's child and dies with it (PR_SET_PDEATHSIG):
// the automatic mode's fencing relies on that. With PIDFile it is detached (its own session)
// and outlives this process, as the manual `hafailover -a` needs; any later process finds it
// again through the file (pid and start time, so a reused pid is never signalled).
type Process struct {
	ServiceName string
	Path        string
	Args        []string
	// Env is added to this process's environment.
	Env []string
	// Dir is the working directory. If empty, this process's.
	Dir string
	// User runs the program as this user (postgres refuses to run as root).
	User string
	// LogFile receives the program's standard output and error. If empty, they are discarded.
	LogFile string
	// PIDFile, if set, detaches the program and records it there.
	PIDFile string
	// StopSignal asks the program to stop. If zero, SIGTERM (postgres wants SIGINT for a
	// fast shutdown).
	StopSignal syscall.Signal
	// StopTimeout is how long Stop waits before SIGKILL. If zero, 10 s.
	StopTimeout time.Duration
	// Health, if set, tells whether the running program serves (see HTTPCheck, TCPCheck).
	// Without it, the program counts as healthy once it has run for 250 ms, so that one that
	// exits at once (a bad option, a port in use) fails its start.
	Health func(ctx context.Context) error

	mu      sync.Mutex
	cmd     *exec.Cmd
	kill    context.CancelFunc // ends the program's context: SIGKILL to its group
	done    chan struct{}      // closed when the child started here has been reaped
	waitErr error
	started time.Time
}

// settleTime is how long a program without a health check must run to count as healthy.
const settleTime = 250 * time.Millisecond

func (p *Process) Name() string { return p.ServiceName }

func (p *Process) String() string {
	return strings.Join(append([]string{p.Path}, p.Args...), " ")
}

// Start runs the program. Starting a program that runs does nothing.
func (p *Process) Start(ctx context.Context) error {
	if p.Path == "" {
		return fmt.Errorf("service %s: no program to run", p.ServiceName)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return nil
	}
	var out *os.File
	if p.LogFile != "" {
		f, err := os.OpenFile(p.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("service %s: log file: %w", p.ServiceName, err)
		}
		defer f.Close()
		out = f
	}
	// The program's context is its own, not Start's: cancelling it is the last resort of
	// Stop, and kills the whole group.
	life, kill := context.WithCancel(context.WithoutCancel(ctx))
	cmd := exec.CommandContext(life, p.Path, p.Args...)
	cmd.Dir = p.Dir
	if p.Env != nil {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	attr := &syscall.SysProcAttr{}
	if p.PIDFile != "" {
		attr.Setsid = true
	} else {
		attr.Setpgid = true
		attr.Pdeathsig = syscall.SIGKILL
	}
	if p.User != "" {
		cred, err := lookupCredential(p.User)
		if err != nil {
			kill()
			return fmt.Errorf("service %s: %w", p.ServiceName, err)
		}
		attr.Credential = cred
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		kill()
		return fmt.Errorf("service %s: %w", p.ServiceName, err)
	}
	done := make(chan struct{})
	p.cmd, p.kill, p.done, p.waitErr, p.started = cmd, kill, done, nil, time.Now()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	if p.PIDFile != "" {
		st, err := procStart(cmd.Process.Pid)
		if err != nil {
			// Already gone (Healthy reports how it ended), or /proc is unreadable.
			if _, serr := os.Stat("/proc/self/stat"); serr == nil {
				return nil
			}
			killGroup(cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("service %s: /proc: %w", p.ServiceName, err)
		}
		if err := writeFileAtomic(p.PIDFile, fmt.Appendf(nil, "%d %d\n", cmd.Process.Pid, st)); err != nil {
			killGroup(cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("service %s: pid file %s: %w", p.ServiceName, p.PIDFile, err)
		}
	}
	return nil
}

// runningLocked reports whether the program runs, started here or found by its pid file.
func (p *Process) runningLocked() bool {
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return true
		}
	}
	if p.PIDFile != "" {
		pid, _ := readPIDFile(p.PIDFile)
		return pid > 0
	}
	return false
}

// Stop stops the program: StopSignal to its process group, then SIGKILL after StopTimeout
// or when ctx ends, whichever comes first.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	done, kill := p.done, p.kill
	pid := 0
	if p.cmd != nil {
		pid = p.cmd.Process.Pid
	}
	p.mu.Unlock()
	if p.PIDFile != "" && (done == nil || isClosed(done)) {
		// Started by another process (or long gone): find it by its pid file.
		fpid, err := readPIDFile(p.PIDFile)
		if err != nil {
			return fmt.Errorf("service %s: %w", p.ServiceName, err)
		}
		if fpid == 0 {
			return removeIfExists(p.PIDFile)
		}
		err = p.stopPID(ctx, fpid)
		if rerr := removeIfExists(p.PIDFile); err == nil {
			err = rerr
		}
		return err
	}
	if done == nil {
		return nil
	}
	sig := p.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if !isClosed(done) {
		_ = killGroup(pid, sig)
		t := time.NewTimer(p.stopTimeout())
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	kill() // SIGKILL to the group if the leader still runs (cmd.Cancel)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("service %s: pid %d survives SIGKILL", p.ServiceName, pid)
	}
	// The leader is gone; members of its group that stayed behind go too.
	_ = killGroup(pid, syscall.SIGKILL)
	if p.PIDFile != "" {
		return removeIfExists(p.PIDFile)
	}
	return nil
}

// stopPID stops a detached program that another process started.
func (p *Process) stopPID(ctx context.Context, pid int) error {
	sig := p.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if err := killGroup(pid, sig); err != nil {
		return fmt.Errorf("service %s: signal %d: %w", p.ServiceName, pid, err)
	}
	deadline := time.Now().Add(p.stopTimeout())
	for alive(pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = killGroup(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
			for alive(pid) {
				if time.Now().After(deadline) {
					return fmt.Errorf("service %s: pid %d survives SIGKILL", p.ServiceName, pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = killGroup(pid, syscall.SIGKILL)
	return nil
}

// Healthy reports ErrNotRunning when the program does not run, else asks Health.
func (p *Process) Healthy(ctx context.Context) error {
	p.mu.Lock()
	done, waitErr, started := p.done, p.waitErr, p.started
	p.mu.Unlock()
	switch {
	case done != nil && isClosed(done):
		if waitErr == nil {
			waitErr = errors.New("exited with status 0")
		}
		return fmt.Errorf("service %s: %w: %w", p.ServiceName, ErrNotRunning, waitErr)
	case done == nil && p.PIDFile != "":
		pid, err := readPIDFile(p.PIDFile)
		if err != nil {
			return fmt.Errorf("service %s: %w", p.ServiceName, err)
		}
		if pid == 0 {
			return fmt.Errorf("service %s: %w", p.ServiceName, ErrNotRunning)
		}
	case done == nil:
		return fmt.Errorf("service %s: %w", p.ServiceName, ErrNotRunning)
	}
	if p.Health == nil {
		if up := time.Since(started); done != nil && up < settleTime {
			return fmt.Errorf("service %s: running for %s only", p.ServiceName, up.Round(time.Millisecond))
		}
		return nil
	}
	return p.Health(ctx)
}

func (p *Process) stopTimeout() time.Duration {
	if p.StopTimeout > 0 {
		return p.StopTimeout
	}
	return 10 * time.Second
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func killGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %s: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// procStart returns a process's start time (clock ticks after boot, /proc/PID/stat field 22).
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	state, start, ok := parseProcStat(string(b))
	if !ok {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	if state == 'Z' || state == 'X' {
		return 0, fs.ErrNotExist
	}
	return start, nil
}

// parseProcStat returns the state and the start time of a /proc/PID/stat line.
func parseProcStat(s string) (state byte, start uint64, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// After the command: state is field 3 of the line, start time field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], start, true
}

func alive(pid int) bool {
	_, err := procStart(pid)
	return err == nil
}

// readPIDFile returns the pid recorded in path when that process still runs (same start
// time), else 0.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: want \"PID STARTTIME\", got %q", path, strings.TrimSpace(string(b)))
	}
	got, err := procStart(pid)
	if err != nil || got != start {
		return 0, nil
	}
	return pid, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
