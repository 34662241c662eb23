package ha

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ServiceSpec is a service written on a command line (provctl hafailover --service):
//
//	NAME=unit:UNIT[;health=CHECK]
//	NAME=exec:PROGRAM ARG...[;user=USER][;stop=SIGNAL][;timeout=DURATION][;health=CHECK][;log=FILE][;pidfile=FILE]
//
// CHECK is an http:// or https:// URL (wants a 2xx answer), tcp:HOST:PORT, or a postgres://
// URL (wants the server to accept a session: not merely listening while it recovers). The program's
// arguments are separated by white space, with no quoting: an argument cannot hold a space
// or a ';'.
type ServiceSpec struct {
	Name        string
	Kind        string // "unit" or "exec"
	Unit        string
	Argv        []string
	User        string
	StopSignal  string // "SIGINT", "SIGTERM", ...
	StopTimeout time.Duration
	Health      string
	LogFile     string
	PIDFile     string
}

var signals = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGHUP": syscall.SIGHUP, "SIGKILL": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
}

// ParseServiceSpec reads one --service value.
func ParseServiceSpec(s string) (ServiceSpec, error) {
	var sp ServiceSpec
	bad := func(format string, a ...any) (ServiceSpec, error) {
		return ServiceSpec{}, fmt.Errorf("service %q: %s", s, fmt.Sprintf(format, a...))
	}
	parts := strings.Split(s, ";")
	name, rest, ok := strings.Cut(parts[0], "=")
	if !ok {
		return bad("want NAME=unit:UNIT or NAME=exec:PROGRAM ARGS")
	}
	if !validServiceName(name) {
		return bad("name %q: want 1 to 64 letters, digits, '-', '_' or '.'", name)
	}
	sp.Name = name
	kind, body, ok := strings.Cut(rest, ":")
	switch {
	case !ok:
		return bad("want unit:UNIT or exec:PROGRAM after %s=", name)
	case kind == "unit":
		sp.Kind = kind
		sp.Unit = strings.TrimSpace(body)
		if sp.Unit == "" || strings.ContainsAny(sp.Unit, " \t\n/") || strings.HasPrefix(sp.Unit, "-") {
			return bad("unit %q: want a systemd unit name", body)
		}
	case kind == "exec":
		sp.Kind = kind
		sp.Argv = strings.Fields(body)
		if len(sp.Argv) == 0 || !filepath.IsAbs(sp.Argv[0]) {
			return bad("program %q: want an absolute path", firstField(body))
		}
	default:
		return bad("kind %q: want unit or exec", kind)
	}
	seen := map[string]bool{}
	for _, opt := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok || v == "" {
			return bad("option %q: want key=value", opt)
		}
		if seen[k] {
			return bad("option %s given twice", k)
		}
		seen[k] = true
		if sp.Kind == "unit" && k != "health" {
			return bad("option %s applies to exec services only", k)
		}
		switch k {
		case "user":
			if strings.ContainsAny(v, " \t:/") {
				return bad("user %q: want a user name", v)
			}
			sp.User = v
		case "stop":
			sig := strings.ToUpper(v)
			if !strings.HasPrefix(sig, "SIG") {
				sig = "SIG" + sig
			}
			if _, ok := signals[sig]; !ok {
				return bad("stop signal %q: want one of TERM, INT, QUIT, HUP, KILL, USR1, USR2", v)
			}
			sp.StopSignal = sig
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("timeout %q: want a positive duration such as 10s", v)
			}
			sp.StopTimeout = d
		case "health":
			if _, err := healthCheck(v); err != nil {
				return bad("%v", err)
			}
			sp.Health = v
		case "log", "pidfile":
			if !filepath.IsAbs(v) || strings.ContainsAny(v, " \t") {
				return bad("%s %q: want an absolute path", k, v)
			}
			if k == "log" {
				sp.LogFile = v
			} else {
				sp.PIDFile = v
			}
		default:
			return bad("unknown option %q (user, stop, timeout, health, log, pidfile)", k)
		}
	}
	return sp, nil
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func validServiceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// String writes the spec back in the form ParseServiceSpec reads.
func (sp ServiceSpec) String() string {
	var b strings.Builder
	b.WriteString(sp.Name + "=" + sp.Kind + ":")
	if sp.Kind == "unit" {
		b.WriteString(sp.Unit)
	} else {
		b.WriteString(strings.Join(sp.Argv, " "))
	}
	for _, kv := range [][2]string{{"user", sp.User}, {"stop", sp.StopSignal}, {"timeout", durationString(sp.StopTimeout)},
		{"health", sp.Health}, {"log", sp.LogFile}, {"pidfile", sp.PIDFile}} {
		if kv[1] != "" {
			b.WriteString(";" + kv[0] + "=" + kv[1])
		}
	}
	return b.String()
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Service makes the Service the spec describes.
func (sp ServiceSpec) Service() (Service, error) {
	var health func(ctx context.Context) error
	if sp.Health != "" {
		h, err := healthCheck(sp.Health)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", sp.Name, err)
		}
		health = h
	}
	switch sp.Kind {
	case "unit":
		return &Unit{ServiceName: sp.Name, Unit: sp.Unit, Health: health}, nil
	case "exec":
		if len(sp.Argv) == 0 {
			return nil, fmt.Errorf("service %s: no program", sp.Name)
		}
		return &Process{ServiceName: sp.Name, Path: sp.Argv[0], Args: sp.Argv[1:], User: sp.User,
			StopSignal: signals[sp.StopSignal], StopTimeout: sp.StopTimeout, Health: health,
			LogFile: sp.LogFile, PIDFile: sp.PIDFile}, nil
	}
	return nil, fmt.Errorf("service %s: kind %q: want unit or exec", sp.Name, sp.Kind)
}

// healthCheck reads a CHECK: an http(s):// URL or tcp:HOST:PORT.
func healthCheck(s string) (func(ctx context.Context) error, error) {
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		if strings.ContainsAny(s, " \t") || len(s) <= len("https://") {
			return nil, fmt.Errorf("health check %q: want a URL", s)
		}
		return HTTPCheck(s), nil
	case strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://"):
		if strings.ContainsAny(s, " \t") {
			return nil, fmt.Errorf("health check %q: want a URL", s)
		}
		return PGCheck(s), nil
	case strings.HasPrefix(s, "tcp:"):
		addr := strings.TrimPrefix(s, "tcp:")
		host, port, ok := strings.Cut(addr, ":")
		if i := strings.LastIndexByte(addr, ':'); i >= 0 {
			host, port, ok = addr[:i], addr[i+1:], true
		}
		if !ok || host == "" || port == "" || strings.ContainsAny(addr, " \t") {
			return nil, fmt.Errorf("health check %q: want tcp:HOST:PORT", s)
		}
		return TCPCheck(addr), nil
	}
	return nil, fmt.Errorf("health check %q: want an http:// URL, tcp:HOST:PORT or a postgres:// URL", s)
}
