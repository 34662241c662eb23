package ha

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostsTag marks the hosts-file lines that Activate adds, so Deactivate removes exactly those.
const hostsTag = "# provkit-ha"

// hostsFields splits one hosts-file line into address and names, without its comment.
func hostsFields(line string) (netip.Addr, []string, bool) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return netip.Addr{}, nil, false
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, nil, false
	}
	return a.Unmap(), f[1:], true
}

// HostsLookup returns the first name that an /etc/hosts-style file gives addr.
func HostsLookup(data []byte, addr netip.Addr) (string, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		if a, names, ok := hostsFields(line); ok && a == addr {
			return names[0], true
		}
	}
	return "", false
}

// hostsNames are the names a line for the VIP carries: the name, and its short form when
// the name is long (xCAT adds both).
func hostsNames(name string) []string {
	if short, _, ok := strings.Cut(name, "."); ok && short != "" {
		return []string{name, short}
	}
	return []string{name}
}

// HostsAdd returns data with the line "addr names... # provkit-ha" appended, unless a line
// already gives addr the first name (then data is returned unchanged and added is false).
// tag is the comment that marks the line; "" means untagged (a permanent line).
func HostsAdd(data []byte, addr netip.Addr, names []string, tag string) (out []byte, added bool) {
	if len(names) == 0 {
		return data, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if a, ns, ok := hostsFields(line); ok && a == addr {
			for _, n := range ns {
				if n == names[0] {
					return data, false
				}
			}
		}
	}
	var b bytes.Buffer
	b.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString(addr.String() + "\t" + strings.Join(names, " "))
	if tag != "" {
		b.WriteString(" " + tag)
	}
	b.WriteByte('\n')
	return b.Bytes(), true
}

// HostsRemove returns data without the lines for addr that end with tag.
func HostsRemove(data []byte, addr netip.Addr, tag string) (out []byte, removed bool) {
	lines := strings.SplitAfter(string(data), "\n")
	var b bytes.Buffer
	for _, line := range lines {
		body := strings.TrimRight(line, "\r\n")
		if a, _, ok := hostsFields(body); ok && a == addr && strings.HasSuffix(strings.TrimSpace(body), tag) {
			removed = true
			continue
		}
		b.WriteString(line)
	}
	if !removed {
		return data, false
	}
	return b.Bytes(), true
}

// writeFileAtomic replaces path by data through a rename, keeping the file's mode. When the
// rename cannot work (an /etc/hosts bind-mounted into a container), it writes in place.
func writeFileAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".provkit-ha-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Chmod(mode)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return werr
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			return os.WriteFile(path, data, mode)
		}
		return err
	}
	return nil
}

// Hostnamer reads and sets this host's name.
type Hostnamer interface {
	Hostname() (string, error)
	SetHostname(name string) error
}

type kernelHost struct{}

func (kernelHost) Hostname() (string, error) { return os.Hostname() }

func (kernelHost) SetHostname(name string) error { return unix.Sethostname([]byte(name)) }

// hostsChange adds the VIP's line to the hosts file and remembers whether it did.
type hostsChange struct {
	added bool
	name  string
	tag   string
}

// apply makes the hosts file resolve the VIP: with Setup (tag "") a permanent line, with
// Activate a tagged one that Deactivate removes.
func (h *hostsChange) apply(s *settings, tag string) (string, error) {
	data, err := os.ReadFile(s.hostsFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	name := s.hostname
	if name == "" {
		if name, _ = HostsLookup(data, s.vip.Addr()); name == "" {
			return "no name for " + s.vip.Addr().String() + " in " + s.hostsFile, nil
		}
	}
	h.name, h.tag = name, tag
	out, added := HostsAdd(data, s.vip.Addr(), hostsNames(name), tag)
	if !added {
		return fmt.Sprintf("%s resolves to %s in %s", name, s.vip.Addr(), s.hostsFile), nil
	}
	if err := writeFileAtomic(s.hostsFile, out); err != nil {
		return "", fmt.Errorf("hosts file %s: %w", s.hostsFile, err)
	}
	h.added = true
	return fmt.Sprintf("added %s %s to %s", s.vip.Addr(), name, s.hostsFile), nil
}

func (h *hostsChange) revert(s *settings) error {
	if !h.added {
		return nil
	}
	data, err := os.ReadFile(s.hostsFile)
	if err != nil {
		return fmt.Errorf("hosts file %s: %w", s.hostsFile, err)
	}
	var out []byte
	var removed bool
	if h.tag != "" {
		out, removed = HostsRemove(data, s.vip.Addr(), h.tag)
	} else {
		// Setup's line is untagged: remove the exact line it wrote.
		out, removed = removeExactLine(data, s.vip.Addr().String()+"\t"+strings.Join(hostsNames(h.name), " "))
	}
	if !removed {
		return nil
	}
	return writeFileAtomic(s.hostsFile, out)
}

func removeExactLine(data []byte, line string) ([]byte, bool) {
	var b bytes.Buffer
	removed := false
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !removed && strings.TrimRight(l, "\r\n") == line {
			removed = true
			continue
		}
		b.WriteString(l)
	}
	return b.Bytes(), removed
}

// hostnameChange is Activate's host-name step: the VIP's name in the hosts file and, with
// SetHostname, as this host's name. The previous name is kept in the state directory so that
// a later Deactivate (another process) restores it.
type hostnameChange struct {
	hosts   hostsChange
	setName bool
}

func (h *hostnameChange) apply(s *settings) (string, error) {
	detail, err := h.hosts.apply(s, hostsTag)
	if err != nil || !s.setHostname || h.hosts.name == "" {
		return detail, err
	}
	cur, err := s.host.Hostname()
	if err != nil {
		h.hosts.revert(s)
		return "", err
	}
	if cur != h.hosts.name {
		if err := saveState(s.stateDir, "hostname", cur); err != nil {
			h.hosts.revert(s)
			return "", err
		}
		if err := s.host.SetHostname(h.hosts.name); err != nil {
			h.hosts.revert(s)
			return "", fmt.Errorf("set host name %s: %w", h.hosts.name, err)
		}
		h.setName = true
		detail += fmt.Sprintf("; host name %s (was %s)", h.hosts.name, cur)
	}
	return detail, nil
}

func (h *hostnameChange) revert(s *settings) error {
	var errs []error
	if h.setName {
		if err := restoreHostname(s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.hosts.revert(s); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// restoreHostname puts back the host name saved by Activate, and removes the hosts-file
// line Activate added. It does nothing when there is nothing to restore.
func restoreHostname(s *settings) error {
	var errs []error
	if prev, err := loadState(s.stateDir, "hostname"); err != nil {
		errs = append(errs, err)
	} else if prev != "" {
		if err := s.host.SetHostname(prev); err != nil {
			errs = append(errs, fmt.Errorf("set host name %s: %w", prev, err))
		} else if err := clearState(s.stateDir, "hostname"); err != nil {
			errs = append(errs, err)
		}
	}
	if data, err := os.ReadFile(s.hostsFile); err == nil {
		if out, removed := HostsRemove(data, s.vip.Addr(), hostsTag); removed {
			if err := writeFileAtomic(s.hostsFile, out); err != nil {
				errs = append(errs, fmt.Errorf("hosts file %s: %w", s.hostsFile, err))
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// saveState, loadState and clearState keep small values in the state directory.
func saveState(dir, key, value string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, key), []byte(value+"\n"))
}

func loadState(dir, key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("state %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func clearState(dir, key string) error {
	if err := os.Remove(filepath.Join(dir, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
