package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The states nodeinit reports, in order. A failure is reported as "failed: <why>".
const (
	StateNetbooting = "netbooting" // network up, fetching or mounting the root
	StateBooting    = "booting"    // root ready, switching to it
	StateBooted     = "booted"     // the root's init runs as PID 1
	statePrefixFail = "failed: "
)

// Status is the JSON body of a report.
type Status struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// reporter posts states to provkit.status=. Reports are best effort: a node boots even
// when nobody listens, after a bounded number of tries.
type reporter struct {
	url      string // empty: reporting is off
	node     string
	client   *http.Client
	attempts int
	backoff  time.Duration
	con      *console
}

func newReporter(cfg Config, con *console) *reporter {
	r := &reporter{node: cfg.Node, con: con, attempts: 3, backoff: time.Second, client: newHTTPClient()}
	if cfg.StatusURL != nil {
		r.url = cfg.StatusURL.String()
	}
	return r
}

// newHTTPClient returns the client for reports: no proxy (there is no environment to
// read one from), short timeouts.
func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}

// failState turns an error into the reported "failed: <why>", one line, bounded.
func failState(err error) string {
	why := strings.Join(strings.Fields(err.Error()), " ")
	if len(why) > 300 {
		why = why[:297] + "..."
	}
	return statePrefixFail + why
}

// report posts one state; it returns an error only for the caller to log.
func (r *reporter) report(ctx context.Context, state string) error {
	if r.url == "" {
		return nil
	}
	body, err := json.Marshal(Status{Node: r.node, State: state})
	if err != nil {
		return err
	}
	var last error
	for i := 0; i < r.attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(r.backoff * time.Duration(i)):
			}
		}
		start := time.Now()
		last = r.post(ctx, body)
		if last == nil {
			r.con.debugf("status: reported %q in %.2fs", state, time.Since(start).Seconds())
			return nil
		}
	}
	err = fmt.Errorf("report %q to %s: %w", state, r.url, last)
	r.con.warn("%v", err)
	return err
}

func (r *reporter) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "provkit-nodeinit")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
