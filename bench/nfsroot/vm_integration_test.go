//go:build integration

package nfsrootbench

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// The kernel-client side of bench/nfsroot (vm.sh): one qemu guest with the Debian kernel's
// NFS client mounts nfsroot, the stock go-nfs setup and nfs-ganesha in turn, serving the
// same debootstrap tree from the same namespace, and measures, on a fresh mount each time:
//
//	read      cat of the 256 MiB bench-big.bin to /dev/null (after drop_caches)
//	walk      find /usr (GNU find, chrooted into the mount): READDIRPLUS, LOOKUP
//	statwalk  find /usr -printf %s right after: a stat of every entry (GETATTR)
//
// Times come from the guest's /proc/uptime. For each mount the guest also reports its RPC
// counts and the time it waited for them (/proc/self/mountstats, "execute"), and the
// benchmark reads each server's CPU time from /proc at the end: together they tell the
// server's share from the emulated guest's. The servers run as in run.sh: nfsroot
// (bench/nfsroot/provnfs) with /var and /tmp writable; go-nfs v0.0.4 osfs +
// NullAuthHandler + CachingHandler (bench/nfsroot/stocknfs); nfs-ganesha with the VFS
// backend and a private rpcbind. No portmapper is used: every mount gives port= and
// mountport=.

// guestScript is the guest's /init body. %[1]d is the number of rounds.
const guestScript = `busybox --install -s /bin
ip link set eth0 up
ip addr add 10.94.110.10/24 dev eth0
now() { cut -d' ' -f1 /proc/uptime; }
sub() { awk "BEGIN { printf \"%%.2f\", $1 - $2 }"; }
TREE=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^tree=//p')
src_nfsroot=10.94.110.1:/images/bench; opt_nfsroot=port=2049,mountport=2049
src_gonfs=10.94.110.2:/; opt_gonfs=port=2049,mountport=2049
src_ganesha=10.94.110.3:$TREE; opt_ganesha=port=2049,mountport=20048
set -- nfsroot gonfs ganesha
for r in $(seq 1 %[1]d); do
	for s in "$@"; do
		eval src=\$src_$s opt=\$opt_$s
		mkdir -p /mnt/$s
		sync; echo 3 > /proc/sys/vm/drop_caches
		i=0
		until mount -t nfs -o ro,nolock,noacl,nosharecache,vers=3,proto=tcp,mountproto=tcp,$opt $src /mnt/$s; do
			i=$((i+1)); [ $i -lt 30 ] || { echo "BENCH-ERROR $s: mount $src failed"; poweroff -f; }
			sleep 1
		done
		size=$(stat -c %%s /mnt/$s/bench-big.bin)
		t0=$(now); cat /mnt/$s/bench-big.bin > /dev/null; t1=$(now)
		n=$(chroot /mnt/$s /usr/bin/find /usr | wc -l); t2=$(now)
		n2=$(chroot /mnt/$s /usr/bin/find /usr -printf '%%s\n' | wc -l); t3=$(now)
		ops=$(awk -v mnt=/mnt/$s '$1 == "device" { m = ($5 == mnt); next } m && $1 ~ /^[A-Z]+:$/ && $2 > 0 { sub(":", "", $1); printf " %%s=%%d/%%d", $1, $2, $9 }' /proc/self/mountstats)
		echo "BENCH-OPS server=$s round=$r$ops"
		umount /mnt/$s
		echo "BENCH server=$s round=$r bytes=$size read=$(sub $t1 $t0) entries=$n walk=$(sub $t2 $t1) entries2=$n2 statwalk=$(sub $t3 $t2)"
	done
	# Rotate the order so that no server always goes first.
	first=$1; shift; set -- "$@" $first
done
echo BENCH-DONE
poweroff -f
`

// ganeshaScript runs rpcbind and nfs-ganesha in a private /run (ganesha registers with
// rpcbind or exits), as run.sh does.
const ganeshaScript = `#!/bin/sh
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/rpcbind
rpcbind -f &
RP=$!
sleep 0.5
ganesha.nfsd -F -f "$1" -L "$2/ganesha.log" -p "$2/ganesha.pid" -N NIV_WARN &
GP=$!
trap 'kill $GP; wait $GP; kill $RP; wait $RP' TERM INT
wait $GP
`

// opsLine is the guest's per-mount RPC counts (/proc/self/mountstats): OP=calls/execute ms.
var opsLine = regexp.MustCompile(`BENCH-OPS server=(\S+) round=\d+((?: [A-Z]+=\d+/\d+)*)`)

var benchLine = regexp.MustCompile(`BENCH server=(\S+) round=(\d+) bytes=(\d+) read=([\d.]+) entries=(\d+) walk=([\d.]+) entries2=(\d+) statwalk=([\d.]+)`)

// BenchmarkVMKernelClient runs the guest once (use -benchtime 1x); $ROUNDS sets the
// rounds (default 3). The tree is $PROVKIT_CACHE/bench/minbase-bookworm with its
// bench-big.bin, as run.sh and vm.sh make it.
func BenchmarkVMKernelClient(b *testing.B) {
	testenv.Require(b, append(vmtest.Needs(), testenv.Program("ganesha.nfsd", "rpcbind", "unshare"))...)
	tree := filepath.Join(vmtest.CacheDir(), "bench", "minbase-bookworm")
	big, err := os.Stat(filepath.Join(tree, "bench-big.bin"))
	if err != nil || big.Size() != 256<<20 {
		b.Fatalf("%s/bench-big.bin: %v (run bench/nfsroot/vm.sh, which makes the tree)", tree, err)
	}
	rounds := 3
	if s := os.Getenv("ROUNDS"); s != "" {
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 {
			b.Fatalf("ROUNDS=%q: want a positive number", s)
		}
	}
	out, err := exec.Command("find", filepath.Join(tree, "usr")).Output()
	if err != nil {
		b.Fatal(err)
	}
	wantEntries := strings.Count(string(out), "\n")

	n := vmtest.NewNet(b, "nbv", netip.MustParsePrefix("10.94.110.1/24"))
	for _, a := range []string{"10.94.110.2/24", "10.94.110.3/24"} {
		n.NS.MustIP(b, "addr", "add", a, "dev", n.Bridge)
	}
	k := vmtest.DebianKernel(b)
	dir := b.TempDir()
	provnfs := vmtest.BuildGo(b, "github.com/provkit/provkit/bench/nfsroot/provnfs")
	stocknfs := vmtest.BuildGo(b, "github.com/provkit/provkit/bench/nfsroot/stocknfs")
	pids := map[string]int{}
	start := func(name string, argv ...string) {
		cmd := n.NS.Command(b.Context(), argv...)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		pids[name] = cmd.Process.Pid
		b.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			logf.Close()
			if b.Failed() {
				l, _ := os.ReadFile(logf.Name())
				b.Logf("%s log:\n%s", name, l)
			}
		})
	}
	start("nfsroot", provnfs, "-root", tree, "-export", "/images/bench", "-listen", "10.94.110.1:2049",
		"-clients", "10.94.110.0/24", "-state", filepath.Join(dir, "state"), "-writable", "/var,/tmp")
	start("gonfs", stocknfs, "-root", tree, "-listen", "10.94.110.2:2049")
	conf := fmt.Sprintf(`NFS_CORE_PARAM { Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Bind_addr = 10.94.110.3;
	Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFS_KRB5 { Active_krb5 = false; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 1; Path = %s; Pseudo = /tree; Access_Type = RO; Squash = No_Root_Squash;
	Protocols = 3; Transports = TCP; SecType = sys; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
`, tree)
	for name, content := range map[string]string{"ganesha.conf": conf, "ganesha.sh": ganeshaScript} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	start("ganesha", "unshare", "--mount", "--propagation", "private", filepath.Join(dir, "ganesha.sh"), filepath.Join(dir, "ganesha.conf"), dir)

	initrd := vmtest.BusyboxInitramfs(b, k, fmt.Sprintf(guestScript, rounds), "virtio_pci", "virtio_net", "nfsv3")
	b.ResetTimer()
	vm := vmtest.StartVM(b, vmtest.VMConfig{Net: n, Kernel: k.Vmlinuz, Initrd: initrd, MemoryMB: 1024, Name: "bench",
		Append: "console=ttyS0 quiet panic=-1 tree=" + tree})
	if _, err := vm.Await("BENCH-DONE", time.Duration(rounds)*10*time.Minute); err != nil {
		vm.LogConsole(b)
		b.Fatal(err)
	}
	b.StopTimer()
	// The servers' CPU time over the whole session (every process of each server's tree:
	// ganesha runs under a shell with its rpcbind), to tell server time from guest time.
	cpu := map[string]float64{}
	for name, pid := range pids {
		t, err := treeCPU(pid)
		if err != nil {
			b.Fatalf("%s's CPU time: %v", name, err)
		}
		cpu[name] = t
	}

	type figures struct{ read, walk, statwalk []float64 }
	res := map[string]*figures{}
	// Per server and round: the metadata calls (every op but READ) and the time the guest
	// waited for them (execute: queued, sent, answered), and the same for READ.
	type rpcs struct{ metaCalls, metaMS, readCalls, readMS []float64 }
	ops := map[string]*rpcs{}
	for _, l := range vm.Console() {
		if strings.Contains(l, "BENCH-ERROR") {
			b.Fatal(l)
		}
		if m := opsLine.FindStringSubmatch(l); m != nil {
			var mc, mms, rc, rms float64
			for _, f := range strings.Fields(m[2]) {
				op, v, _ := strings.Cut(f, "=")
				c, ms, _ := strings.Cut(v, "/")
				cn, _ := strconv.ParseFloat(c, 64)
				msn, _ := strconv.ParseFloat(ms, 64)
				if op == "READ" {
					rc, rms = rc+cn, rms+msn
				} else {
					mc, mms = mc+cn, mms+msn
				}
			}
			o := ops[m[1]]
			if o == nil {
				o = &rpcs{}
				ops[m[1]] = o
			}
			o.metaCalls, o.metaMS = append(o.metaCalls, mc), append(o.metaMS, mms)
			o.readCalls, o.readMS = append(o.readCalls, rc), append(o.readMS, rms)
			continue
		}
		m := benchLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		bytes, _ := strconv.Atoi(m[3])
		e1, _ := strconv.Atoi(m[5])
		e2, _ := strconv.Atoi(m[7])
		if bytes != 256<<20 || e1 != wantEntries || e2 != wantEntries {
			b.Fatalf("%s round %s: %d bytes, %d and %d entries; want %d bytes, %d entries", m[1], m[2], bytes, e1, e2, 256<<20, wantEntries)
		}
		f := res[m[1]]
		if f == nil {
			f = &figures{}
			res[m[1]] = f
		}
		for i, dst := range []*[]float64{&f.read, &f.walk, &f.statwalk} {
			v, _ := strconv.ParseFloat(m[4+2*i], 64)
			*dst = append(*dst, v)
		}
	}
	servers := []string{"nfsroot", "gonfs", "ganesha"}
	for _, s := range servers {
		if res[s] == nil || len(res[s].read) != rounds {
			vm.LogConsole(b)
			b.Fatalf("%s: %d rounds measured, want %d", s, len(res[s].read), rounds)
		}
	}
	med := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	fmt.Printf("# kernel NFS client in a qemu TCG guest (Debian %s, 1 vCPU, virtio-net), %d rounds, medians (min); /usr = %d entries\n", k.Version, rounds, wantEntries)
	fmt.Printf("%-8s %22s %16s %20s\n", "server", "read 256 MiB (MiB/s)", "find /usr (s)", "find -printf %s (s)")
	for _, s := range servers {
		f := res[s]
		fmt.Printf("%-8s %12.0f (%6.0f) %9.2f (%5.2f) %13.2f (%5.2f)\n", s,
			256/med(f.read), 256/slices.Min(f.read), med(f.walk), slices.Min(f.walk), med(f.statwalk), slices.Min(f.statwalk))
		b.ReportMetric(256/med(f.read), s+"-read-MiB/s")
		b.ReportMetric(med(f.walk), s+"-walk-s")
		b.ReportMetric(med(f.statwalk), s+"-statwalk-s")
	}
	fmt.Printf("# per mount (read + walk + stat walk), medians: RPCs and the guest's wait for them (mountstats execute); whole session: time timed in the guest, the server's CPU\n")
	fmt.Printf("%-8s %14s %14s %10s %10s %12s %11s\n", "server", "metadata RPCs", "their wait (s)", "READ RPCs", "wait (s)", "guest (s)", "server CPU (s)")
	for _, s := range servers {
		f, o := res[s], ops[s]
		if o == nil || len(o.metaCalls) != rounds {
			b.Fatalf("%s: no RPC counts for every round", s)
		}
		var sum float64
		for _, v := range slices.Concat(f.read, f.walk, f.statwalk) {
			sum += v
		}
		fmt.Printf("%-8s %14.0f %14.2f %10.0f %10.2f %12.1f %11.2f\n", s,
			med(o.metaCalls), med(o.metaMS)/1000, med(o.readCalls), med(o.readMS)/1000, sum, cpu[s])
	}
	nr, st, ga := res["nfsroot"], res["gonfs"], res["ganesha"]
	fmt.Printf("walk: nfsroot %.1fx faster than stock go-nfs, %.2fx the speed of ganesha; stat walk: %.1fx and %.2fx\n",
		med(st.walk)/med(nr.walk), med(ga.walk)/med(nr.walk), med(st.statwalk)/med(nr.statwalk), med(ga.statwalk)/med(nr.statwalk))
	fmt.Printf("read: nfsroot %.2fx stock go-nfs, %.2fx ganesha\n", med(st.read)/med(nr.read), med(ga.read)/med(nr.read))
}

// treeCPU is the user and system CPU time, in seconds, of process pid and its descendants
// that are still running (from /proc; clock ticks of 1/100 s, as on every Linux/amd64).
func treeCPU(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// utime and stime are fields 14 and 15 of the line, 12 and 13 after it.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	total := float64(u+s) / 100
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	for _, task := range tasks {
		children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, c := range strings.Fields(string(children)) {
			cp, _ := strconv.Atoi(c)
			if t, err := treeCPU(cp); err == nil {
				total += t
			}
		}
	}
	return total, nil
}
