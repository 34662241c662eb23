// Package testenv decides whether a test that needs more than plain `go test` (root, network
// namespaces, qemu, a daemon from Debian) may run here.
//
// Such a test calls Require at its start. When a need is not met the test is skipped with a
// message naming what is missing, unless PROVKIT_INTEGRATION=require is set (as .ci/run does),
// in which case the test fails instead: CI never passes by skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Required reports whether missing prerequisites fail tests instead of skipping them.
func Required() bool { return os.Getenv("PROVKIT_INTEGRATION") == "require" }

// A Need is one prerequisite of a test.
type Need func() (missing string)

// Root is met when the test runs as uid 0.
func Root() Need {
	return func() string {
		if os.Geteuid() != 0 {
			return "root (run as root, or use `make test`)"
		}
		return ""
	}
}

// Program is met when every named program is on PATH.
func Program(names ...string) Need {
	return func() string {
		var miss []string
		for _, n := range names {
			if _, err := exec.LookPath(n); err != nil {
				miss = append(miss, n)
			}
		}
		if len(miss) > 0 {
			return "program " + strings.Join(miss, ", ") + " (installed by scripts/setup-debian.sh)"
		}
		return ""
	}
}

// Env is met when the environment variable is set and not empty.
func Env(name, why string) Need {
	return func() string {
		if os.Getenv(name) == "" {
			return fmt.Sprintf("$%s (%s)", name, why)
		}
		return ""
	}
}

// Short is met unless the tests run with -short.
func Short() Need {
	return func() string {
		if testing.Short() {
			return "a run without -short"
		}
		return ""
	}
}

// Require skips the test (or fails it, under PROVKIT_INTEGRATION=require) when a prerequisite
// is missing, naming all of them.
func Require(tb testing.TB, needs ...Need) {
	tb.Helper()
	var miss []string
	for _, n := range needs {
		if m := n(); m != "" {
			miss = append(miss, m)
		}
	}
	if len(miss) == 0 {
		return
	}
	msg := "needs " + strings.Join(miss, "; ")
	if Required() {
		tb.Fatalf("%s, and PROVKIT_INTEGRATION=require forbids skipping", msg)
	}
	tb.Skip(msg)
}
