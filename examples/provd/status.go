package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/provkit/provkit/cluster"
)

// statusReport is what nodeinit posts at each step of a boot.
type statusReport struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// statusHandler records node states (POST /api/v1/status) in nodelist.status, where
// nodestat reads them. A node may only report for itself: the request must come from the
// node's own address (or from loopback, for admins and tests).
type statusHandler struct {
	store   *cluster.DB
	views   *views
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

func (h *statusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST a JSON {\"node\":..., \"state\":...}", http.StatusMethodNotAllowed)
		return
	}
	var rep statusReport
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		http.Error(w, "bad status report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := validState(rep.State); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v := h.views.Fresh(r.Context())
	n, err := v.Node(rep.Node)
	if err != nil {
		http.Error(w, fmt.Sprintf("unknown node %q", rep.Node), http.StatusNotFound)
		return
	}
	if from, ok := remoteAddr(r); ok && !from.IsLoopback() && n.IP.IsValid() && from != n.IP {
		h.log.Warn("status report refused", "node", rep.Node, "ip", from, "state", rep.State)
		http.Error(w, fmt.Sprintf("%s may not report for node %s (its address is %s)", from, rep.Node, n.IP), http.StatusForbidden)
		return
	}
	if err := cluster.SetStatus(r.Context(), h.store, rep.Node, rep.State, h.now()); err != nil {
		if errors.Is(err, cluster.ErrNotFound) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		h.log.Error("status", "node", rep.Node, "err", err)
		http.Error(w, "cannot record the status", http.StatusInternalServerError)
		return
	}
	h.metrics.add("provd_status_reports_total", 1)
	h.log.Info("node status", "node", rep.Node, "state", rep.State)
	w.WriteHeader(http.StatusNoContent)
}

// validState accepts short printable states: "netbooting", "booting", "booted",
// "failed: why" ...
func validState(s string) error {
	if s == "" || len(s) > 200 {
		return fmt.Errorf("state must be 1 to 200 characters, got %d", len(s))
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("state %q has unprintable characters", s)
	}
	return nil
}

func remoteAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}
