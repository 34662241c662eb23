package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/image"
)

func main() {
	if os.Getenv(envWatch) == "1" {
		os.Exit(runWatcher())
	}
	if len(os.Args) == 3 && os.Args[1] == "check" {
		os.Exit(check(os.Stdout, os.Args[2]))
	}
	if len(os.Args) >= 2 && !strings.HasPrefix(os.Args[1], "-") && os.Getpid() != 1 {
		if code, ok := subcommand(os.Args[1:]); ok {
			os.Exit(code)
		}
	}
	if os.Getpid() != 1 {
		fmt.Fprintf(os.Stderr, "nodeinit is the /init of a netboot initramfs and runs as PID 1.\n"+
			"To check a kernel command line: %s check 'imgurl=http://... NODE=n1 ...'\n", os.Args[0])
		os.Exit(2)
	}
	os.Exit(initMain())
}

// check parses a command line and prints what nodeinit would do, as JSON; exit 1 if the
// command line is bad. provd's tests use it to hold nodeset to the contract.
func check(w io.Writer, cmdline string) int {
	cfg, err := ParseCmdline(cmdline)
	if err != nil {
		fmt.Fprintf(w, "nodeinit: %v\n", err)
		return 1
	}
	plan := map[string]any{"node": cfg.Node, "init": cfg.Init, "rescue": cfg.Rescue, "nettimeout": cfg.NetTimeout.Seconds()}
	if cfg.ImageURL != nil {
		plan["root"] = "stateless " + cfg.ImageURL.String()
	}
	if cfg.ImageSHA != nil {
		plan["imgsha256"] = fmt.Sprintf("%x", cfg.ImageSHA)
	}
	if cfg.NFS != nil {
		plan["root"] = "nfs " + cfg.NFS.Server + ":" + cfg.NFS.Path
		plan["nfsoptions"] = cfg.NFS.mountOptions(mustAddr(cfg.NFS.Server))
	}
	if cfg.StatusURL != nil {
		plan["status"] = cfg.StatusURL.String()
	}
	if cfg.BootIF != nil {
		plan["bootif"] = cfg.BootIF.String()
	}
	if len(cfg.Modules) > 0 {
		plan["modules"] = cfg.Modules
	}
	b, _ := json.MarshalIndent(plan, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
	return 0
}

// machine is the system nodeinit drives, one function per step; tests replace them.
type machine struct {
	setup       func() error
	cmdline     func() (string, error)
	loadModules func(extra []string, con *console)
	network     func(ctx context.Context, cfg Config, con *console) (netInfo, error)
	fetchRoot   func(ctx context.Context, cfg Config, dir string, con *console) error
	nfsRoot     func(ctx context.Context, cfg Config, dir string, con *console) error
	checkInit   func(dir, init string) error
	bindCDSL    func(dir, node string, con *console) error
	switchRoot  func(dir, init string, args []string, rep *reporter, con *console) error
	findShell   func() string
	runShell    func(shell string) error
	reboot      func()
	// Discovery mode: startDiscovery starts what runs while the network comes up (the
	// LLDP listeners) and returns the function that collects the report; postReport
	// sends it; after waits between tries.
	startDiscovery func(ctx context.Context, cfg Config, con *console) func(netInfo) Report
	postReport     func(ctx context.Context, client *http.Client, url string, rep Report) (Answer, error)
	after          func(time.Duration) <-chan time.Time
	// bmcSetup applies runcmd=bmcsetup's settings over in-band IPMI; postBMCResult
	// reports what it did.
	bmcSetup      func(ctx context.Context, c BMCConfig, con *console) BMCResult
	postBMCResult func(ctx context.Context, client *http.Client, url string, res BMCResult) error
	// runImage carries out a runimage=<URL> step (runimage.go).
	runImage func(ctx context.Context, client *http.Client, url, node string, con *console) error
	// Sysclone mode: deploy lays the image onto the disks, reporting each step.
	deploy func(ctx context.Context, cfg Config, ni netInfo, rep *reporter, con *console) error
}

func realMachine() machine {
	return machine{
		setup: setupEarly,
		cmdline: func() (string, error) {
			b, err := os.ReadFile("/proc/cmdline")
			return string(b), err
		},
		loadModules: loadModules,
		network:     setupNetwork,
		fetchRoot:   fetchRoot,
		nfsRoot:     nfsRoot,
		checkInit:   checkInit,
		bindCDSL:    bindCDSL,
		switchRoot:  switchRoot,
		findShell:   findShell,
		runShell:    runShell,
		reboot: func() {
			unix.Sync()
			_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		},
		startDiscovery: func(ctx context.Context, cfg Config, con *console) func(netInfo) Report {
			lc := startLLDP(ctx, cfg.LLDPWait, con)
			return func(ni netInfo) Report { return collectReport(lc, ni) }
		},
		postReport: postReport,
		after:      time.After,
		bmcSetup:   setupBMC,
		runImage: func(ctx context.Context, client *http.Client, url, node string, con *console) error {
			return runImage(ctx, client, url, findShell(), "/tmp", node, con)
		},
		postBMCResult: postBMCResult,
		deploy:        deploySysclone,
	}
}

func initMain() int {
	con := &console{w: os.Stdout, start: time.Now()}
	// u-root's dhclient logs with the standard logger; nodeinit prints its own lines.
	log.SetOutput(io.Discard)
	m := realMachine()
	return run(context.Background(), m, con, os.Args[1:])
}

// run boots and, on failure, reports it and rescues or gives up. It returns the exit
// code; on success it does not return (the new init replaced nodeinit).
func run(ctx context.Context, m machine, con *console, args []string) int {
	st := &bootState{}
	err := boot(ctx, m, con, args, st)
	if err == nil {
		return 0 // only reached by tests: switchRoot does not return on success
	}
	next := "the kernel panics now (add panic=N to the kernel command line to reboot N seconds after)"
	if st.rescue {
		next = "provkit.rescue=1: starting a rescue shell"
	}
	con.banner(err, next)
	if st.netUp && st.rep != nil {
		_ = st.rep.report(ctx, failState(err))
	}
	if st.rescue {
		if sh := m.findShell(); sh != "" {
			if err := m.runShell(sh); err != nil {
				con.warn("rescue shell: %v", err)
			}
			con.printf("rescue shell ended: rebooting")
			m.reboot()
			return 1
		}
		con.printf("no shell in the initramfs (add busybox to it for provkit.rescue=1): the kernel panics now")
	}
	time.Sleep(time.Second) // let the console drain before the panic message
	return 1
}

// bootState is what run needs to know about how far boot got.
type bootState struct {
	cfg    Config
	rep    *reporter
	netUp  bool
	rescue bool
}

func boot(ctx context.Context, m machine, con *console, args []string, st *bootState) error {
	if err := m.setup(); err != nil {
		return fmt.Errorf("early mounts: %w", err)
	}
	raw, err := m.cmdline()
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	cfg, err := ParseCmdline(raw)
	st.cfg = cfg
	st.rescue = cfg.Rescue || slices.Contains(strings.Fields(raw), "provkit.rescue=1")
	if err != nil {
		return err
	}
	con.debug = cfg.Debug
	st.rep = newReporter(cfg, con)
	con.printf("provkit nodeinit: node %q, root %s", cfg.Node, rootDesc(cfg))
	if cfg.Node != "" {
		_ = unix.Sethostname([]byte(cfg.Node))
	} else if cfg.StatusURL != nil {
		con.warn("no NODE= on the command line: reports will carry an empty node name")
	}
	m.loadModules(cfg.Modules, con)
	var collect func(netInfo) Report
	if cfg.DiscoverURL != nil {
		collect = m.startDiscovery(ctx, cfg, con)
	}
	ni, err := m.network(ctx, cfg, con)
	if err != nil {
		return err
	}
	st.netUp = true
	con.debugf("network: %+v", ni)
	if cfg.DiscoverURL != nil {
		return discover(ctx, m, con, cfg, collect(ni))
	}
	if cfg.SyscloneURL != nil {
		if err := m.deploy(ctx, cfg, ni, st.rep, con); err != nil {
			return err
		}
		con.printf("sysclone: installed; rebooting from the disk")
		m.reboot()
		return nil
	}
	_ = st.rep.report(ctx, StateNetbooting)
	if cfg.ImageURL != nil {
		err = m.fetchRoot(ctx, cfg, newRoot, con)
	} else {
		err = m.nfsRoot(ctx, cfg, newRoot, con)
	}
	if err != nil {
		return err
	}
	if cfg.CDSL {
		if err := m.bindCDSL(newRoot, cfg.Node, con); err != nil {
			return err
		}
	}
	if err := m.checkInit(newRoot, cfg.Init); err != nil {
		return err
	}
	_ = st.rep.report(ctx, StateBooting)
	return m.switchRoot(newRoot, cfg.Init, args, st.rep, con)
}

func rootDesc(cfg Config) string {
	if cfg.DiscoverURL != nil {
		return "none: discovery mode, reporting to " + cfg.DiscoverURL.String()
	}
	if cfg.SyscloneURL != nil {
		return "sysclone install to disk from " + cfg.SyscloneURL.String()
	}
	if cfg.ImageURL != nil {
		return "stateless from " + cfg.ImageURL.String()
	}
	return "nfs " + cfg.NFS.Server + ":" + cfg.NFS.Path
}

// setupEarly mounts the API filesystems the rest needs.
func setupEarly() error {
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"run", "/run", "tmpfs", "mode=0755"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, m.data); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return os.MkdirAll(newRoot, 0o755)
}

// loadModules loads the initramfs's module list, then the command line's, each with its
// dependencies (u-root kmodule, from the modules.dep image.WriteInitramfs made). A
// module that does not load is a warning: the step that needs it fails clearly later.
func loadModules(extra []string, con *console) {
	var names []string
	if f, err := os.Open("/" + image.InitramfsModuleList); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if n := strings.TrimSpace(sc.Text()); n != "" {
				names = append(names, n)
			}
		}
		f.Close()
	}
	names = append(names, extra...)
	if len(names) == 0 {
		return
	}
	start := time.Now()
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		con.warn("modules: %v", err)
		return
	}
	failed := 0
	for _, n := range names {
		if err := p.Probe(n, ""); err != nil {
			failed++
			con.warn("module %s: %v", n, err)
		}
	}
	con.printf("modules: %d loaded in %.1fs", len(names)-failed, time.Since(start).Seconds())
}

// findShell returns a shell for provkit.rescue=1, if the initramfs has one.
func findShell() string {
	for _, p := range []string{"/bin/sh", "/bin/busybox", "/bbin/elvish", "/bbin/gosh"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func runShell(shell string) error {
	args := []string{}
	if strings.HasSuffix(shell, "busybox") {
		args = []string{"sh"}
	}
	cmd := exec.Command(shell, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin:/bbin", "HOME=/", "TERM=linux", "PS1=(nodeinit rescue) # "}
	return cmd.Run()
}
