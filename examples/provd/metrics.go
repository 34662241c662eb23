package main

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
)

// metrics is a minimal Prometheus text-format registry of counters and gauges (provd keeps
// no dependency for it). Names follow Prometheus conventions.
type metrics struct {
	mu     sync.Mutex
	vals   map[string]float64
	gauges map[string]func() float64
}

func newMetrics() *metrics {
	return &metrics{vals: map[string]float64{}, gauges: map[string]func() float64{}}
}

// add increases counter name (with optional {labels} in the name) by d.
func (m *metrics) add(name string, d float64) {
	m.mu.Lock()
	m.vals[name] += d
	m.mu.Unlock()
}

// gauge registers a value read at scrape time.
func (m *metrics) gauge(name string, fn func() float64) {
	m.mu.Lock()
	m.gauges[name] = fn
	m.mu.Unlock()
}

func (m *metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	lines := make([]string, 0, len(m.vals)+len(m.gauges))
	for k, v := range m.vals {
		lines = append(lines, fmt.Sprintf("%s %g", k, v))
	}
	for k, fn := range m.gauges {
		lines = append(lines, fmt.Sprintf("%s %g", k, fn()))
	}
	m.mu.Unlock()
	sort.Strings(lines)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
