package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// console writes nodeinit's messages: one line each, "nodeinit: ...", to the kernel
// console that /init inherits (and, when debugging, more of them).
type console struct {
	mu    sync.Mutex
	w     io.Writer
	debug bool
	start time.Time
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(c.w, "nodeinit: [%5.1fs] %s\n", time.Since(c.start).Seconds(), strings.TrimRight(msg, "\n"))
}

func (c *console) warn(format string, args ...any) { c.printf("warning: "+format, args...) }

func (c *console) debugf(format string, args ...any) {
	if c.debug {
		c.printf(format, args...)
	}
}

// banner prints a failure so that it stands out on a scrolling console.
func (c *console) banner(err error, next string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := strings.Repeat("*", 72)
	fmt.Fprintf(c.w, "\n%s\nnodeinit: BOOT FAILED: %v\nnodeinit: %s\n%s\n\n", line, err, next, line)
}
