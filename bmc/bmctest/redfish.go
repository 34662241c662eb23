package bmctest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// FakeRedfish is a small Redfish service over TLS with one computer system: service root,
// session log-in and log-out, the systems collection, the system (PowerState, Boot), its
// Reset action and a PATCH of Boot, and a web page that says OpenBMC. It is enough for
// bmclib's redfish (gofish) and openbmc providers.
type FakeRedfish struct {
	Server         *httptest.Server
	User, Password string

	mu       sync.Mutex
	power    string
	boot     map[string]string
	sessions map[string]string // token -> session ID
	logins   int
	resets   []string
}

// NewFakeRedfish starts the service on a loopback port. Close stops it.
func NewFakeRedfish(user, password string) *FakeRedfish {
	f := &FakeRedfish{User: user, Password: password, power: "Off", sessions: map[string]string{},
		boot: map[string]string{"BootSourceOverrideTarget": "None", "BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideMode": "Legacy"}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	return f
}

// Addr is host:port of the service.
func (f *FakeRedfish) Addr() string { return strings.TrimPrefix(f.Server.URL, "https://") }

// Close stops the service.
func (f *FakeRedfish) Close() { f.Server.Close() }

// PowerOn reports the system's power.
func (f *FakeRedfish) PowerOn() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.power == "On" }

// SetPowerOn sets the system's power.
func (f *FakeRedfish) SetPowerOn(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.power = map[bool]string{true: "On", false: "Off"}[on]
}

// Boot returns the system's BootSourceOverride{Target,Enabled,Mode}.
func (f *FakeRedfish) Boot() (target, enabled, mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.boot["BootSourceOverrideTarget"], f.boot["BootSourceOverrideEnabled"], f.boot["BootSourceOverrideMode"]
}

// Sessions reports the sessions open now and the log-ins so far.
func (f *FakeRedfish) Sessions() (active, logins int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions), f.logins
}

// Resets lists the ResetTypes received.
func (f *FakeRedfish) Resets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.resets...)
}

// ExpireSessions forgets every session, as a BMC does after its session timeout.
func (f *FakeRedfish) ExpireSessions() { f.mu.Lock(); defer f.mu.Unlock(); clear(f.sessions) }

const (
	rfRoot     = "/redfish/v1/"
	rfSessions = "/redfish/v1/SessionService/Sessions"
	rfSystems  = "/redfish/v1/Systems"
	rfSystem   = "/redfish/v1/Systems/1"
	rfReset    = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func rfError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": "Base.1.0.GeneralError", "message": msg}})
}

func (f *FakeRedfish) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path == "" { // the web UI, which bmclib's openbmc provider probes for "OpenBMC"
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><title>OpenBMC</title></html>"))
		return
	}
	if path == strings.TrimSuffix(rfRoot, "/") {
		writeJSON(w, 200, map[string]any{
			"@odata.id": rfRoot, "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "Id": "RootService", "RedfishVersion": "1.6.0",
			"Systems":        map[string]string{"@odata.id": rfSystems},
			"SessionService": map[string]string{"@odata.id": "/redfish/v1/SessionService"},
			"Links":          map[string]any{"Sessions": map[string]string{"@odata.id": rfSessions}},
		})
		return
	}
	if path == rfSessions && r.Method == http.MethodPost {
		var body struct{ UserName, Password string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.UserName != f.User || body.Password != f.Password {
			rfError(w, 401, "invalid user name or password")
			return
		}
		tok, id := make([]byte, 16), make([]byte, 4)
		rand.Read(tok)
		rand.Read(id)
		f.sessions[hex.EncodeToString(tok)] = hex.EncodeToString(id)
		f.logins++
		loc := rfSessions + "/" + hex.EncodeToString(id)
		w.Header().Set("X-Auth-Token", hex.EncodeToString(tok))
		w.Header().Set("Location", loc)
		writeJSON(w, 201, map[string]any{"@odata.id": loc, "Id": hex.EncodeToString(id), "UserName": body.UserName})
		return
	}
	tok := r.Header.Get("X-Auth-Token")
	if _, ok := f.sessions[tok]; !ok {
		rfError(w, 401, "no valid session")
		return
	}
	switch {
	case strings.HasPrefix(path, rfSessions+"/") && r.Method == http.MethodDelete:
		delete(f.sessions, tok)
		w.WriteHeader(204)
	case path == rfSystems && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{"@odata.id": rfSystems, "Members@odata.count": 1,
			"Members": []map[string]string{{"@odata.id": rfSystem}}})
	case path == rfSystem && r.Method == http.MethodGet:
		boot := map[string]any{"BootSourceOverrideTarget@Redfish.AllowableValues": []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup", "Floppy"}}
		for k, v := range f.boot {
			boot[k] = v
		}
		writeJSON(w, 200, map[string]any{"@odata.id": rfSystem, "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
			"Id": "1", "Name": "fake", "PowerState": f.power, "Boot": boot,
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{"target": rfReset,
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle", "Nmi"}}}})
	case path == rfSystem && r.Method == http.MethodPatch:
		var body struct{ Boot map[string]string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			rfError(w, 400, "bad PATCH body")
			return
		}
		for k, v := range body.Boot {
			if _, ok := f.boot[k]; ok {
				f.boot[k] = v
			}
		}
		w.WriteHeader(204)
	case path == rfReset && r.Method == http.MethodPost:
		var body struct{ ResetType string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			rfError(w, 400, "bad reset body")
			return
		}
		f.resets = append(f.resets, body.ResetType)
		switch body.ResetType {
		case "On", "ForceRestart", "PowerCycle":
			f.power = "On"
		case "ForceOff", "GracefulShutdown":
			f.power = "Off"
		default:
			rfError(w, 400, "unsupported ResetType")
			return
		}
		w.WriteHeader(204)
	default:
		rfError(w, 404, "no such resource")
	}
}
