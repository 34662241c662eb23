package ha

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

var (
	// ErrVIPInUse means another host answers for the virtual IP (or this host already has it).
	ErrVIPInUse = errors.New("virtual IP in use")
	// ErrDBType means the requested database type is not the one of the shared data.
	ErrDBType = errors.New("database type mismatch")
	// ErrNotSetUp means the shared-data directory has not been prepared by Setup.
	ErrNotSetUp = errors.New("shared data not set up")
	// ErrNotRunning is wrapped by Service.Healthy when the service is not running at all (it
	// exited, or was never started), as opposed to still starting.
	ErrNotRunning = errors.New("not running")
	// ErrHeld means another node holds the lock.
	ErrHeld = errors.New("lock held by another node")
	// ErrLost means a lease is no longer held: it expired or another node took the lock.
	ErrLost = errors.New("lease lost")
)

// InUseError says who answers for a virtual IP. It matches ErrVIPInUse.
type InUseError struct {
	Addr netip.Addr
	// MAC is the hardware address that answered the ARP probe (nil when Local is set).
	MAC net.HardwareAddr
	// Local names this host's interface that already carries the address ("" if remote).
	Local string
}

func (e *InUseError) Error() string {
	if e.Local != "" {
		return fmt.Sprintf("virtual IP %s is already configured on this host (%s)", e.Addr, e.Local)
	}
	return fmt.Sprintf("virtual IP %s is in use: %s answered an ARP probe for it", e.Addr, e.MAC)
}

// Is makes errors.Is(err, ErrVIPInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrVIPInUse }

// HeldError says which node holds a lock. It matches ErrHeld.
type HeldError struct {
	Holder string
	Token  int64
	// Remaining is how long the holder's lease runs unless renewed.
	Remaining time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lock held by %s (token %d, %s left)", e.Holder, e.Token, e.Remaining.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// StepError reports which step of Setup, Activate or Deactivate failed, and what was undone.
// errors.Is and errors.As see the step's error.
type StepError struct {
	Op   string // "setup", "activate" or "deactivate"
	Step string // "probe", "vip", "hostname", "link /tftpboot", "service provd", ...
	Err  error
	// Undone lists the steps that were undone after the failure, in the order they were undone.
	Undone []string
	// UndoErrs are the failures met while undoing; empty when everything was undone.
	UndoErrs []error
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ha: %s: %s: %v", e.Op, e.Step, e.Err)
	if e.Op == "deactivate" {
		return b.String()
	}
	switch {
	case len(e.UndoErrs) > 0:
		fmt.Fprintf(&b, "; undoing left errors: %v", errors.Join(e.UndoErrs...))
	case len(e.Undone) > 0:
		fmt.Fprintf(&b, "; undone: %s", strings.Join(e.Undone, ", "))
	default:
		b.WriteString("; nothing was changed")
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }
