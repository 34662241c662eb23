package ha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Unit is a Service run by systemd: Start and Stop run `systemctl start|stop UNIT`, Healthy
// reads `systemctl is-active UNIT` (and then asks Health, if set).
type Unit struct {
	// ServiceName names the service in messages. If empty, Unit.
	ServiceName string
	// Unit is the systemd unit, such as postgresql or named.service.
	Unit string
	// Systemctl is the systemctl program. If empty, "systemctl" from PATH.
	Systemctl string
	// Health, if set, tells whether the active unit serves.
	Health func(ctx context.Context) error
}

func (u *Unit) Name() string {
	if u.ServiceName != "" {
		return u.ServiceName
	}
	return u.Unit
}

func (u *Unit) systemctl(ctx context.Context, verb string) (string, error) {
	prog := u.Systemctl
	if prog == "" {
		prog = "systemctl"
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, verb, "--", u.Unit)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && verb != "is-active" {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return "", fmt.Errorf("systemctl %s %s: %w: %s", verb, u.Unit, err, msg)
	}
	if err != nil && out.Len() == 0 {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "", fmt.Errorf("systemctl %s %s: %w", verb, u.Unit, err)
		}
	}
	return strings.TrimSpace(out.String()), nil
}

func (u *Unit) Start(ctx context.Context) error {
	_, err := u.systemctl(ctx, "start")
	return err
}

func (u *Unit) Stop(ctx context.Context) error {
	_, err := u.systemctl(ctx, "stop")
	return err
}

// Healthy maps the unit's state: active is healthy (if Health agrees), activating and
// reloading are "not yet", inactive and failed wrap ErrNotRunning.
func (u *Unit) Healthy(ctx context.Context) error {
	state, err := u.systemctl(ctx, "is-active")
	if err != nil {
		return err
	}
	switch state {
	case "active":
		return call(ctx, u.Health)
	case "activating", "reloading", "refreshing":
		return fmt.Errorf("unit %s is %s", u.Unit, state)
	case "inactive", "failed", "deactivating", "":
		return fmt.Errorf("unit %s is %s: %w", u.Unit, orWord(state, "unknown"), ErrNotRunning)
	default:
		return fmt.Errorf("unit %s: systemctl is-active says %q", u.Unit, state)
	}
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
