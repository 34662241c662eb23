package image

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TerminalProgress returns f when it is a terminal and nil otherwise: pass it as a
// Progress option to get a progress bar on a terminal and silence in scripts and logs.
func TerminalProgress(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return f
}

// progress draws a one-line bar on w, redrawn at most every interval. It is driven by
// the goroutine that reads the data, so it needs no goroutine of its own.
type progress struct {
	w        io.Writer
	label    string
	total    int64 // bytes; 0 if unknown
	done     int64
	start    time.Time
	last     time.Time
	interval time.Duration
	now      func() time.Time
}

func newProgress(w io.Writer, label string, total int64) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, label: label, total: total, interval: 200 * time.Millisecond, now: time.Now}
	p.start = p.now()
	return p
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.done += n
	if t := p.now(); t.Sub(p.last) >= p.interval {
		p.last = t
		p.draw(false)
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.draw(true)
}

func (p *progress) draw(final bool) {
	el := p.now().Sub(p.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\r%s ", p.label)
	if p.total > 0 {
		frac := float64(p.done) / float64(p.total)
		frac = min(max(frac, 0), 1)
		const width = 30
		fill := int(frac * width)
		fmt.Fprintf(&b, "%3.0f%% [%s%s] %s / %s", frac*100, strings.Repeat("=", fill),
			strings.Repeat(" ", width-fill), humanBytes(p.done), humanBytes(p.total))
	} else {
		b.WriteString(humanBytes(p.done))
	}
	fmt.Fprintf(&b, "  %s/s", humanBytes(int64(rate)))
	if final {
		fmt.Fprintf(&b, "  done in %.1fs\n", el.Seconds())
	} else if p.total > 0 && rate > 0 && p.done < p.total {
		eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s   ", eta.Round(time.Second))
	}
	_, _ = io.WriteString(p.w, b.String())
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
