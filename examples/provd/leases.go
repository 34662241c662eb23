package main

import (
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/provkit/provkit/dhcp"
)

// leaseJSON is one lease as the admin API shows it.
type leaseJSON struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
	State    string    `json:"state"`
}

// leasesHandler is the admin API of the DHCP server (loopback only): GET lists the
// leases, DELETE ?mac=<mac> forgets one (provctl makedhcp -d).
type leasesHandler struct {
	srv *dhcp.Server
}

func (h *leasesHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if from, ok := remoteAddr(r); !ok || !from.IsLoopback() {
		http.Error(w, "the DHCP admin API answers on loopback only", http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet:
		ls, err := h.srv.Leases()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out := make([]leaseJSON, 0, len(ls))
		for _, l := range ls {
			j := leaseJSON{IP: l.IP.String(), Hostname: l.Hostname, Expires: l.Expires, State: l.State.String()}
			if l.MAC != nil {
				j.MAC = l.MAC.String()
			}
			out = append(out, j)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	case http.MethodDelete:
		mac, err := net.ParseMAC(r.URL.Query().Get("mac"))
		if err != nil {
			http.Error(w, "mac: "+err.Error(), http.StatusBadRequest)
			return
		}
		found, err := h.srv.ForgetLease(mac)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]bool{"forgotten": found})
	default:
		w.Header().Set("Allow", "GET, DELETE")
		http.Error(w, "GET or DELETE", http.StatusMethodNotAllowed)
	}
}
