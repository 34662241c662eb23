package bmc

import (
	"context"
	"fmt"
	"io"
)

// Rpower is xCAT's rpower for a CLI: it parses verb (on, off, softoff, reset, boot,
// cycle, stat, state, status), runs it on every target, prints "n1: on" lines to out and
// "n1: Error: ..." lines to errw, and returns the exit status (1 if any node failed or
// the verb is bad, else 0).
func (c *Client) Rpower(ctx context.Context, targets []Target, verb string, out, errw io.Writer) int {
	a, err := ParseAction(verb)
	if err != nil {
		fmt.Fprintf(errw, "Error: %v\n", err)
		return 1
	}
	return Report(out, errw, c.Power(ctx, targets, a))
}

// Rsetboot is xCAT's rsetboot for a CLI: device is net, hd, cd, setup, floppy,
// def(ault) or stat; o holds -p and -u. It prints as Rpower does and returns the exit
// status.
func (c *Client) Rsetboot(ctx context.Context, targets []Target, device string, o BootOptions, out, errw io.Writer) int {
	if device == "stat" || device == "" {
		return Report(out, errw, c.BootState(ctx, targets))
	}
	d, err := ParseBootDevice(device)
	if err != nil {
		fmt.Fprintf(errw, "Error: %v\n", err)
		return 1
	}
	return Report(out, errw, c.SetBoot(ctx, targets, d, o))
}

// StatWithPower is what nodestat -p shows for a node that does not answer on the
// network: its status with the power state read by a Stat in parentheses, such as
// "noping(off)", or the error when the power could not be read.
func StatWithPower(status string, r Result) string {
	if r.Err != nil {
		line, _ := FormatResult(r)
		return status + "(" + line[len(r.Node)+2:] + ")"
	}
	return status + "(" + string(r.Power) + ")"
}
