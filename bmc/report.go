package bmc

import (
	"bufio"
	"io"
	"strings"
)

// Report writes results as xCAT's rpower and rsetboot do, one line per node in the
// results' order: "n1: on" to out, "n1: Error: <message>" to errw. It returns the exit
// status xCAT's commands give: 1 if any node failed, else 0.
func Report(out, errw io.Writer, results []Result) int {
	bo, be := bufio.NewWriter(out), bufio.NewWriter(errw)
	code := 0
	for _, r := range results {
		if line, ok := FormatResult(r); ok {
			bo.WriteString(line)
			bo.WriteByte('\n')
		} else {
			be.WriteString(line)
			be.WriteByte('\n')
			code = 1
		}
	}
	bo.Flush()
	be.Flush()
	return code
}

// FormatResult is the line xCAT prints for one result (without the newline) and
// whether the node succeeded. A multi-line error message is folded into one line.
func FormatResult(r Result) (line string, ok bool) {
	if r.Err != nil {
		msg := strings.Join(strings.Fields(r.Err.Error()), " ")
		msg = strings.TrimPrefix(msg, "Error: ") // ipmitool's own messages start so
		return r.Node + ": Error: " + msg, false
	}
	return r.Node + ": " + r.Text, true
}

// ExitCode is Report's exit status without the printing: 1 if any node failed, else 0.
func ExitCode(results []Result) int {
	for _, r := range results {
		if r.Err != nil {
			return 1
		}
	}
	return 0
}
