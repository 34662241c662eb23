package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/provkit/provkit/image"
)

// subcommand runs nodeinit's commands for systems that are not booting: "agent" (the
// sysclone capture agent, which provctl imgcapture starts on a golden node over SSH) and
// "report" (a cloned node reporting a state once it booted from its disk). ok is false
// for an unknown command.
func subcommand(args []string) (code int, ok bool) {
	switch args[0] {
	case "agent":
		return agentMain(), true
	case "report":
		return reportMain(args[1:]), true
	}
	return 0, false
}

// agentMain serves a capture on standard input and output.
func agentMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := image.ServeCapture(ctx, os.Stdin, os.Stdout, image.AgentOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "nodeinit agent: %v\n", err)
		return 1
	}
	return 0
}
