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
	"sync/atomic"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
	"github.com/provkit/provkit/examples/internal/glue"
)

// discoverRetry is how long a node that is not matched yet (or is told to stand by)
// waits before it asks again, in seconds.
const discoverRetry = 10

// discoverHandler is node discovery's API (POST /api/v1/discover): a node booted into
// the discovery image posts what it found about itself (glue.DiscoveryReport); provd
// matches it to a node (cluster.Discover: by MAC, switch port or in sequence), records
// it, runs the node's chain (nodeset to its osimage) and answers what to do next
// (glue.DiscoveryAnswer): reboot into it, or wait and ask again; with the BMC's settings
// when the chain has runcmd=bmcsetup, which the node sets over in-band IPMI and reports
// on to bmcResultHandler. The settings hold the BMC password: like the whole exchange
// (and xCAT's), it is plain HTTP on the provisioning network.
//
// A node may only report from the address its DHCP lease gives the MAC it reports as
// its boot MAC (when provd serves DHCP), so that nobody can claim another machine's name.
type discoverHandler struct {
	store   *cluster.DB
	views   *views
	dhcp    atomic.Pointer[leaseTable] // nil when provd serves no DHCP
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

func (h *discoverHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST a discovery report (JSON)", http.StatusMethodNotAllowed)
		return
	}
	var rep glue.DiscoveryReport
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&rep); err != nil {
		http.Error(w, "bad discovery report: "+err.Error(), http.StatusBadRequest)
		return
	}
	from, _ := remoteAddr(r)
	d, err := rep.Discovered(from)
	if err != nil {
		http.Error(w, "bad discovery report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := h.checkLease(from, d); err != nil {
		h.log.Warn("discovery report refused", "ip", from, "mac", d.BootMAC.String(), "err", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	h.metrics.add("provd_discovery_reports_total", 1)
	res, err := cluster.Discover(r.Context(), h.store, d, h.now())
	var ans glue.DiscoveryAnswer
	switch {
	case errors.Is(err, cluster.ErrNoMatch):
		h.log.Info("discovery: no node matches", "uuid", d.UUID, "mac", d.BootMAC.String(), "ip", from)
		ans = glue.DiscoveryAnswer{Action: "wait", Retry: discoverRetry,
			Message: "no node matches: start sequential discovery (provctl nodediscoverstart) or bind it by hand (provctl nodediscoverdef -u " + d.UUID + " -n <node>)"}
	case err != nil:
		h.log.Error("discovery", "uuid", d.UUID, "mac", d.BootMAC.String(), "err", err)
		ans = glue.DiscoveryAnswer{Action: "wait", Retry: discoverRetry, Message: err.Error()}
	default:
		h.metrics.add("provd_discovered_total", 1)
		h.log.Info("node discovered", "node", res.Node, "mac", d.BootMAC.String(), "method", res.Method, "ip", res.IP,
			"chain", strings.Join(res.Done, ","), "next", res.Next, "state", res.State)
		h.log.Info("node status", "node", res.Node, "state", "discovered")
		for _, s := range res.Skipped {
			h.log.Warn("discovery: chain step skipped", "node", res.Node, "step", s)
		}
		// Serve the new reservation and boot config at once, not at the next poll.
		h.views.Fresh(r.Context())
		ans = glue.DiscoveryAnswer{Node: res.Node, IP: res.IP.String(), Action: res.Next}
		if res.BMC != nil {
			ans.BMC = glue.NewDiscoveryBMC(res.BMC)
			h.log.Info("discovery: bmcsetup sent", "node", res.Node, "bmc", res.BMC) // LogValue: no password
		}
		ans.RunImages = res.RunImages
		switch res.Next {
		case "reboot":
			ans.Message = fmt.Sprintf("you are %s: reboot into %s", res.Node, orDefault(res.State, "the next boot"))
			// The node leaves the discovery range: its address there is free again.
			if ds := h.dhcp.Load(); ds != nil {
				_, _ = (*ds).ForgetLease(d.BootMAC)
			}
		case "standby":
			ans.Action, ans.Retry = "wait", discoverRetry
			ans.Message = fmt.Sprintf("you are %s: stand by (the chain of %s has nothing to boot)", res.Node, res.Node)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// bmcResultHandler takes what a node reports after runcmd=bmcsetup
// (POST /api/v1/discover/bmcsetup, glue.DiscoveryBMCResult) and logs it: "bmcsetup
// done" with the steps, or "bmcsetup failed" with the node's error. The result must
// come from the address the node's discovery report came from (its discoverydata row).
type bmcResultHandler struct {
	store   cluster.Store
	views   *views
	log     *slog.Logger
	metrics *metrics
}

func (h *bmcResultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST a bmcsetup result (JSON)", http.StatusMethodNotAllowed)
		return
	}
	var res glue.DiscoveryBMCResult
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&res); err != nil {
		http.Error(w, "bad bmcsetup result: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !h.views.Current().IsNode(res.Node) {
		http.Error(w, fmt.Sprintf("bmcsetup result for %q: no such node", res.Node), http.StatusBadRequest)
		return
	}
	from, _ := remoteAddr(r)
	rows, err := cluster.DiscoveryRows(r.Context(), h.store, "", res.UUID)
	if err != nil || len(rows) == 0 || rows[0]["node"] != res.Node {
		http.Error(w, fmt.Sprintf("bmcsetup result: %q is not the discovery of %s", res.UUID, res.Node), http.StatusBadRequest)
		return
	}
	if !from.IsLoopback() && !strings.Contains(","+rows[0]["otherdata"]+",", ",ip="+from.String()+",") {
		http.Error(w, fmt.Sprintf("bmcsetup result for %s: not from the address its discovery report came from", res.Node), http.StatusForbidden)
		return
	}
	if res.OK {
		h.metrics.add("provd_bmcsetup_done_total", 1)
		h.log.Info("bmcsetup done", "node", res.Node, "uuid", res.UUID, "ip", from, "channel", res.Channel, "user", res.UserID, "steps", strings.Join(res.Steps, ", "))
	} else {
		h.metrics.add("provd_bmcsetup_failed_total", 1)
		h.log.Warn("bmcsetup failed", "node", res.Node, "uuid", res.UUID, "ip", from, "err", res.Error, "steps", strings.Join(res.Steps, ", "))
	}
	w.WriteHeader(http.StatusNoContent)
}

// leaseTable is what discovery needs of the DHCP server (*dhcp.Server).
type leaseTable interface {
	Leases() ([]dhcp.Lease, error)
	ForgetLease(mac net.HardwareAddr) (bool, error)
}

// checkLease verifies that the report comes from the address the DHCP server leased to
// its boot MAC.
func (h *discoverHandler) checkLease(from netip.Addr, d cluster.Discovered) error {
	ds := h.dhcp.Load()
	if ds == nil || from.IsLoopback() {
		return nil
	}
	leases, err := (*ds).Leases()
	if err != nil {
		return nil // DHCP not serving (yet): nothing to check against
	}
	for _, l := range leases {
		if l.IP == from {
			if l.MAC.String() == d.BootMAC.String() {
				return nil
			}
			return fmt.Errorf("%s is leased to %s, not to %s", from, l.MAC, d.BootMAC)
		}
	}
	return fmt.Errorf("%s has no DHCP lease from provd", from)
}

// onDHCPDiscover logs the DHCP requests of unknown nodes: the first sign of a node to
// discover.
func onDHCPDiscover(log *slog.Logger, m *metrics) func(dhcp.Discovery) {
	return func(d dhcp.Discovery) {
		m.add("provd_dhcp_unknown_total", 1)
		log.Info("dhcp: unknown node", "mac", d.MAC.String(), "offered", d.Offered, "iface", d.Interface, "arch", d.Arch)
	}
}
