package nfsroot

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// mdcache caches metadata of the read-only image: attributes and directory listings,
// keyed by path relative to the image root, for a short time. Clients cannot change the
// image, so only an administrator editing it under a running server sees the delay (at most
// the TTL; NFS clients cache attributes for 3 to 60 seconds themselves). Nodes' writable
// state is never cached. With it, a LOOKUP or READDIRPLUS on the image usually costs no
// system call at all, which is what nfs-ganesha's MDCACHE does too.
type mdcache struct {
	ttl time.Duration
	max int

	mu    sync.RWMutex
	attrs map[string]cachedAttr
	dirs  map[string]cachedDir
	infos map[string]*dirInfo
	// infoEntries counts the entries of all infos.
	infoEntries int
}

type cachedAttr struct {
	st  unix.Stat_t
	exp int64
}

type cachedDir struct {
	ents []rawDirent // sorted by name
	exp  int64
}

// dirInfo is a directory of the image as READDIR serves it: entries in cookie order with
// their attributes (err set for an entry that vanished between getdents and fstatat).
type dirInfo struct {
	names   []string
	cookies []uint64 // ascending
	st      []unix.Stat_t
	ok      []bool
	exp     int64
}

const (
	defaultCacheTTL = 2 * time.Second
	cacheMax        = 1 << 17 // entries of each kind before eviction
)

func newMDCache(ttl time.Duration) *mdcache {
	if ttl < 0 {
		return nil
	}
	if ttl == 0 {
		ttl = defaultCacheTTL
	}
	return &mdcache{ttl: ttl, max: cacheMax, attrs: map[string]cachedAttr{}, dirs: map[string]cachedDir{},
		infos: map[string]*dirInfo{}}
}

func (c *mdcache) stat(rel string, st *unix.Stat_t) bool {
	if c == nil {
		return false
	}
	c.mu.RLock()
	a, ok := c.attrs[rel]
	c.mu.RUnlock()
	if !ok || time.Now().UnixNano() > a.exp {
		return false
	}
	*st = a.st
	return true
}

func (c *mdcache) putStat(rel string, st *unix.Stat_t) {
	if c == nil {
		return
	}
	exp := time.Now().Add(c.ttl).UnixNano()
	c.mu.Lock()
	if len(c.attrs) >= c.max {
		evict(c.attrs, c.max/8)
	}
	c.attrs[rel] = cachedAttr{st: *st, exp: exp}
	c.mu.Unlock()
}

func (c *mdcache) list(rel string) ([]rawDirent, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	d, ok := c.dirs[rel]
	c.mu.RUnlock()
	if !ok || time.Now().UnixNano() > d.exp {
		return nil, false
	}
	return d.ents, true
}

func (c *mdcache) putList(rel string, ents []rawDirent) {
	if c == nil {
		return
	}
	exp := time.Now().Add(c.ttl).UnixNano()
	c.mu.Lock()
	if len(c.dirs) >= c.max/16 {
		evict(c.dirs, c.max/128)
	}
	c.dirs[rel] = cachedDir{ents: ents, exp: exp}
	c.mu.Unlock()
}

// evict drops about n entries (map iteration order makes the choice random).
func evict[V any](m map[string]V, n int) {
	for k := range m {
		if n <= 0 {
			return
		}
		delete(m, k)
		n--
	}
}

func (c *mdcache) info(rel string) (*dirInfo, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	d, ok := c.infos[rel]
	c.mu.RUnlock()
	if !ok || time.Now().UnixNano() > d.exp {
		return nil, false
	}
	return d, true
}

func (c *mdcache) putInfo(rel string, d *dirInfo) {
	if c == nil {
		return
	}
	d.exp = time.Now().Add(c.ttl).UnixNano()
	c.mu.Lock()
	for c.infoEntries+len(d.names) > c.max && len(c.infos) > 0 {
		for k, old := range c.infos { // a random victim
			c.infoEntries -= len(old.names)
			delete(c.infos, k)
			break
		}
	}
	if old, ok := c.infos[rel]; ok {
		c.infoEntries -= len(old.names)
	}
	c.infos[rel] = d
	c.infoEntries += len(d.names)
	c.mu.Unlock()
}
