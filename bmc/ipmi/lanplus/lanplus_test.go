package lanplus_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/bmc/bmctest"
	"github.com/provkit/provkit/bmc/ipmi"
	"github.com/provkit/provkit/bmc/ipmi/lanplus"

	"github.com/provkit/provkit/internal/testenv"
)

func fake(t *testing.T) *bmctest.FakeBMC {
	t.Helper()
	f, err := bmctest.NewFakeBMC("admin", "s3cret-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
func TestSessionCommands(t *testing.T) {
	for _, suite := range []ipmi.CipherSuite{ipmi.CipherSuite3, ipmi.CipherSuite17} {
		t.Run(ipmi.CipherSuite(suite).String(), func(t *testing.T) {
			f := fake(t)
			testenv.NoGoroutineLeak(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := lanplus.Open(ctx, lanplus.Config{Addr: f.Addr(), User: "admin", Password: "s3cret-pw", Suite: suite})
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.ChassisStatus(ctx)
			if err != nil || st.PowerOn {
				t.Fatalf("ChassisStatus = %+v, %v; want off", st, err)
			}
			if err := s.ChassisControl(ctx, ipmi.PowerUp); err != nil {
				t.Fatal(err)
			}
			if st, err := s.ChassisStatus(ctx); err != nil || !st.PowerOn {
				t.Fatalf("after power up: %+v, %v", st, err)
			}
			want := ipmi.BootFlags{Valid: true, Persistent: true, EFI: true, Device: ipmi.BootPXE}
			if err := s.SetBootFlags(ctx, want); err != nil {
				t.Fatal(err)
			}
			if got, err := s.BootFlags(ctx); err != nil || got != want {
				t.Errorf("BootFlags = %+v, %v; want %+v", got, err, want)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if active, opened := f.Sessions(); active != 0 || opened != 1 {
				t.Errorf("after Close: %d active sessions, %d opened; want 0, 1", active, opened)
			}
			if _, err := s.ChassisStatus(ctx); !errors.Is(err, lanplus.ErrClosed) {
				t.Errorf("ChassisStatus after Close = %v, want ErrClosed", err)
			}
			if d := cmp.Diff([]string{"power up", "boot pxe valid=true persistent=true efi=true"}, f.Commands()); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	f := fake(t)
	bh, err := bmctest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	refused, _ := bmctest.FreeUDPPorts(1)
	tests := []struct {
		name string
		cfg  lanplus.Config
		want error
	}{
		{"wrong password", lanplus.Config{Addr: f.Addr(), User: "admin", Password: "nope-nope"}, lanplus.ErrAuth},
		{"wrong user", lanplus.Config{Addr: f.Addr(), User: "root", Password: "s3cret-pw"}, lanplus.ErrAuth},
		{"no answer", lanplus.Config{Addr: bh.Addr, User: "admin", Password: "s3cret-pw"}, context.DeadlineExceeded},
		{"refused", lanplus.Config{Addr: "127.0.0.1:" + strconv.Itoa(refused[0]), User: "admin", Password: "s3cret-pw"}, lanplus.ErrRefused},
		{"password too long", lanplus.Config{Addr: f.Addr(), User: "admin", Password: strings.Repeat("x", 21)}, nil},
		{"bad address", lanplus.Config{Addr: "no-port", User: "admin", Password: "x"}, nil},
		{"bad suite", lanplus.Config{Addr: f.Addr(), Suite: 2}, ipmi.ErrCipherSuite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.NoGoroutineLeak(t)
			tt.cfg.RetryInterval = 50 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			s, err := lanplus.Open(ctx, tt.cfg)
			if err == nil {
				s.Close(ctx)
				t.Fatal("Open succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
			if tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

func TestRetransmit(t *testing.T) {
	f := fake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.Drop(2) // lose the Open Session Request and its first resend
	s, err := lanplus.Open(ctx, lanplus.Config{Addr: f.Addr(), User: "admin", Password: "s3cret-pw", RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	f.Drop(1) // lose a command
	if err := s.ChassisControl(ctx, ipmi.PowerUp); err != nil {
		t.Fatal(err)
	}
	if !f.PowerOn() {
		t.Error("power is not on after a retransmitted power up")
	}
}

func TestCancel(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	bh, err := bmctest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = lanplus.Open(ctx, lanplus.Config{Addr: bh.Addr, User: "admin", Password: "x", RetryInterval: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Open = %v, want context.Canceled", err)
	}
}

func TestExpiredSession(t *testing.T) {
	f := fake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := lanplus.Open(ctx, lanplus.Config{Addr: f.Addr(), User: "admin", Password: "s3cret-pw", RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	f.ForgetSessions()
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := s.ChassisStatus(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ChassisStatus on a forgotten session = %v, want DeadlineExceeded", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := fake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := lanplus.Open(ctx, lanplus.Config{Addr: f.Addr(), User: "admin", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	errs := make(chan error, 20)
	for range 20 {
		go func() { _, err := s.ChassisStatus(ctx); errs <- err }()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
