package ha_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/provkit/provkit/ha"
	"github.com/provkit/provkit/ha/hatest"
)

// A management node's activation and deactivation, with the network and host name faked
// (package hatest) so that it runs anywhere; on a real node Network and Host stay nil.
func ExampleManager() {
	dir, _ := os.MkdirTemp("", "ha-example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	start := func(name string) ha.Service {
		return &ha.Func{ServiceName: name,
			StartFunc: func(context.Context) error { fmt.Println("  (starting", name+")"); return nil },
			StopFunc:  func(context.Context) error { fmt.Println("  (stopping", name+")"); return nil }}
	}
	m := &ha.Manager{
		Interface: "eth0",
		VIP:       netip.MustParsePrefix("10.0.0.10/24"),
		SharedDir: filepath.Join(dir, "shared"),
		Hostname:  "mn.cluster",
		HostsFile: filepath.Join(dir, "hosts"),
		Links:     []ha.Link{{Local: filepath.Join(dir, "tftpboot"), Shared: filepath.Join(dir, "shared", "tftpboot")}},
		Services:  []ha.Service{start("database"), start("provd"), start("dns")},
		StateDir:  filepath.Join(dir, "state"),
		Network:   &hatest.Network{},
		Host:      &hatest.Host{Name: "mn1"},
		Progress: func(e ha.Event) {
			fmt.Println(e.Kind, strings.ReplaceAll(e.Step, dir, "DIR"))
		},
	}
	ctx := context.Background()
	if err := m.Setup(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("activate:")
	if err := m.Activate(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("deactivate:")
	if err := m.Deactivate(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// done probe
	// done database type
	// done shared DIR/shared/tftpboot
	// done hosts
	// activate:
	// done database type
	// done probe
	// done vip
	// done hostname
	// done link DIR/tftpboot
	//   (starting database)
	// done service database
	//   (starting provd)
	// done service provd
	//   (starting dns)
	// done service dns
	// deactivate:
	//   (stopping dns)
	// done stop dns
	//   (stopping provd)
	// done stop provd
	//   (stopping database)
	// done stop database
	// done unlink DIR/tftpboot
	// done remove vip
	// done restore hostname
}

// A service that cannot start makes Activate undo everything it did, newest first.
func ExampleStepError() {
	dir, _ := os.MkdirTemp("", "ha-example")
	defer os.RemoveAll(dir)
	m := &ha.Manager{
		Interface: "eth0", VIP: netip.MustParsePrefix("10.0.0.10/24"), SharedDir: filepath.Join(dir, "shared"),
		HostsFile: filepath.Join(dir, "hosts"), StateDir: filepath.Join(dir, "state"), Links: []ha.Link{},
		Services: []ha.Service{
			&ha.Func{ServiceName: "database"},
			&ha.Func{ServiceName: "provd", StartFunc: func(context.Context) error { return fmt.Errorf("port 67 in use") }},
		},
		Attempts: 2, RetryDelay: time.Millisecond,
		Network: &hatest.Network{}, Host: &hatest.Host{},
	}
	ctx := context.Background()
	m.Hostname = "mn"
	if err := m.Setup(ctx); err != nil {
		fmt.Println(err)
	}
	err := m.Activate(ctx)
	fmt.Println(err)
	// Output:
	// ha: activate: service provd: failed 2 attempts, the last: start: port 67 in use; undone: service database, hostname, vip
}

func ExampleParseServiceSpec() {
	sp, err := ha.ParseServiceSpec("database=exec:/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main;user=postgres;stop=INT;health=tcp:10.0.0.10:5432")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sp.Name, sp.Kind, sp.Argv[0], sp.User, sp.StopSignal, sp.Health)
	_, err = ha.ParseServiceSpec("dns=unit:named;user=bind")
	fmt.Println(err)
	// Output:
	// database exec /usr/lib/postgresql/15/bin/postgres postgres SIGINT tcp:10.0.0.10:5432
	// service "dns=unit:named;user=bind": option user applies to exec services only
}

// The automatic mode with an in-memory lock: the node takes the lock, activates, and on
// shutdown deactivates and releases the lock.
func ExampleAuto() {
	dir, _ := os.MkdirTemp("", "ha-example")
	defer os.RemoveAll(dir)
	m := &ha.Manager{
		Interface: "eth0", VIP: netip.MustParsePrefix("10.0.0.10/24"), SharedDir: filepath.Join(dir, "shared"),
		Hostname: "mn", HostsFile: filepath.Join(dir, "hosts"), StateDir: filepath.Join(dir, "state"), Links: []ha.Link{},
		Services: []ha.Service{&ha.Func{ServiceName: "provd"}},
		Network:  &hatest.Network{}, Host: &hatest.Host{},
	}
	if err := m.Setup(context.Background()); err != nil {
		fmt.Println(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &ha.Auto{Manager: m, Lock: &hatest.Lock{TTL: 2 * time.Second}, Name: "mn1",
		OnEvent: func(e ha.Event) {
			fmt.Println(e.Kind)
			if e.Kind == ha.EventActive {
				cancel()
			}
		}}
	if err := a.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// recovered
	// acquired
	// active
	// released
}
