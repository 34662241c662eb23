package nfsroot

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fileCache keeps regular files open for READ, so that a client reading a file in many
// READs costs one open and then about one pread per call, as nfs-ganesha's open-file cache
// does.
//
// An entry is keyed by where a handle resolves (the export, the node's view for its own
// writable state, and the path in the layer) and remembers the device and inode it opened.
// Every READ still resolves its handle and stats the path (from the image's mdcache, or
// with a system call in a node's state) and uses the entry only when the path still names
// the same inode; otherwise it opens the path again. The open descriptor holds the inode, so
// its number cannot be reused by another file while the entry exists: an entry never serves
// another file's data. Writes, truncations and appends go to the same inode and are seen by
// the next pread; a removed or renamed file no longer matches its path.
//
// The cache holds at most max descriptors (least recently used evicted first) and closes
// those unused for idle. Entries are reference counted: an evicted entry a READ still uses
// is closed when that READ is done, so a descriptor is never closed (and its number reused)
// under a pread or a sendfile.
type fileCache struct {
	max  int
	idle time.Duration

	mu     sync.Mutex
	m      map[fileKey]*openFile
	lru    openFile // sentinel of a circular list, most recently used first
	closed bool
	stats  fileStats
}

// fileStats counts what the cache did (for tests and debugging).
type fileStats struct {
	hits, misses, evicted, expired, dropped int
}

type fileKey struct {
	x   *export
	v   *view // the node's view for a file of its state; nil for the image
	rel string
}

type openFile struct {
	key        fileKey
	fd         int
	dev, ino   uint64
	refs       int
	dead       bool  // out of the map: closed when refs drops to 0
	used       int64 // when last released, Unix nanoseconds
	prev, next *openFile
	// noSendfile is set when sendfile failed on the file (an I/O error): its READs then
	// read into the reply, and answer an error with an NFS status.
	noSendfile atomic.Bool
}

const (
	defaultMaxOpenFiles = 1024
	defaultFileIdle     = 5 * time.Second
)

// newFileCache returns a cache of up to max descriptors (0: the default, negative: none,
// for which a nil cache is returned: it opens a descriptor per READ).
func newFileCache(max int, idle time.Duration) *fileCache {
	if max < 0 {
		return nil
	}
	if max == 0 {
		max = defaultMaxOpenFiles
	}
	if idle <= 0 {
		idle = defaultFileIdle
	}
	c := &fileCache{max: max, idle: idle, m: make(map[fileKey]*openFile)}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

func (c *fileCache) unlink(f *openFile) {
	f.prev.next, f.next.prev = f.next, f.prev
	f.prev, f.next = nil, nil
}

func (c *fileCache) pushFront(f *openFile) {
	f.prev, f.next = &c.lru, c.lru.next
	c.lru.next.prev = f
	c.lru.next = f
}

// remove takes f out of the map and the list; it reports whether f can be closed now.
// Called with c.mu held.
func (c *fileCache) remove(f *openFile) bool {
	delete(c.m, f.key)
	c.unlink(f)
	f.dead = true
	return f.refs == 0
}

// get returns the entry for key when it holds the inode dev/ino, with a reference the
// caller must release. An entry for key that holds another inode is dropped.
func (c *fileCache) get(key fileKey, dev, ino uint64) *openFile {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	f := c.m[key]
	if f == nil {
		c.stats.misses++
		c.mu.Unlock()
		return nil
	}
	if f.dev != dev || f.ino != ino {
		c.stats.misses++
		c.stats.dropped++
		closeNow := c.remove(f)
		c.mu.Unlock()
		if closeNow {
			unix.Close(f.fd)
		}
		return nil
	}
	c.stats.hits++
	f.refs++
	if c.lru.next != f {
		c.unlink(f)
		c.pushFront(f)
	}
	c.mu.Unlock()
	return f
}

// add caches fd, open for reading on inode dev/ino, under key and returns its entry with a
// reference the caller must release. Without a cache (or once closed), the entry is
// private to the caller and release closes it.
func (c *fileCache) add(key fileKey, fd int, dev, ino uint64) *openFile {
	f := &openFile{key: key, fd: fd, dev: dev, ino: ino, refs: 1}
	if c == nil {
		f.dead = true
		return f
	}
	var victims []int
	c.mu.Lock()
	if c.closed {
		f.dead = true
		c.mu.Unlock()
		return f
	}
	if old := c.m[key]; old != nil {
		// Another READ of the same path opened it at the same time, or the path names a
		// new inode: keep the newest.
		if c.remove(old) {
			victims = append(victims, old.fd)
		}
	}
	for len(c.m) >= c.max {
		last := c.lru.prev
		c.stats.evicted++
		if c.remove(last) {
			victims = append(victims, last.fd)
		}
	}
	c.m[key] = f
	c.pushFront(f)
	c.mu.Unlock()
	for _, fd := range victims {
		unix.Close(fd)
	}
	return f
}

// release gives back a reference from get or add.
func (c *fileCache) release(f *openFile) {
	if c == nil {
		unix.Close(f.fd)
		return
	}
	now := time.Now().UnixNano()
	c.mu.Lock()
	f.refs--
	f.used = now
	closeNow := f.dead && f.refs == 0
	c.mu.Unlock()
	if closeNow {
		unix.Close(f.fd)
	}
}

// drop forgets key (a file removed or renamed through the server), so that a removed
// file's space is freed now rather than when it would have expired.
func (c *fileCache) drop(key fileKey) {
	if c == nil {
		return
	}
	c.mu.Lock()
	f := c.m[key]
	closeNow := false
	if f != nil {
		c.stats.dropped++
		closeNow = c.remove(f)
	}
	c.mu.Unlock()
	if closeNow {
		unix.Close(f.fd)
	}
}

// expire closes the descriptors unused since before now-idle.
func (c *fileCache) expire(now time.Time) {
	limit := now.Add(-c.idle).UnixNano()
	var victims []int
	c.mu.Lock()
	// The list is in order of use; entries in use (refs > 0) may sit anywhere, and their
	// used time is that of their previous release.
	for f := c.lru.prev; f != &c.lru; {
		prev := f.prev
		if f.refs == 0 && f.used < limit {
			c.stats.expired++
			c.remove(f)
			victims = append(victims, f.fd)
		}
		f = prev
	}
	c.mu.Unlock()
	for _, fd := range victims {
		unix.Close(fd)
	}
}

// run expires idle descriptors until ctx is done, then closes the cache.
func (c *fileCache) run(ctx context.Context) {
	if c == nil {
		return
	}
	defer c.close()
	t := time.NewTicker(c.idle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.expire(now)
		}
	}
}

// close closes every descriptor not in use, and the others when their READs are done;
// later adds are not cached.
func (c *fileCache) close() {
	if c == nil {
		return
	}
	var victims []int
	c.mu.Lock()
	c.closed = true
	for f := c.lru.next; f != &c.lru; {
		next := f.next
		if c.remove(f) {
			victims = append(victims, f.fd)
		}
		f = next
	}
	c.mu.Unlock()
	for _, fd := range victims {
		unix.Close(fd)
	}
}

// snapshot returns the counters and the number of descriptors held.
func (c *fileCache) snapshot() (fileStats, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, len(c.m)
}

// openRead finds the regular file a READ of o reads: its attributes in st (fresh for the
// inode read) and, for a regular file, an open descriptor to release. For anything else
// (a directory, a device) it returns a nil *openFile and st only, never opening it.
func (o *object) openRead(st *unix.Stat_t) (*openFile, error) {
	v := o.v
	files := o.x.files
	key := fileKey{x: o.x, rel: o.loc.rel}
	if o.loc.layer == layerState {
		key.v = v
	}
	var known *unix.Stat_t // what the cache's check found the path to be
	if files != nil {
		// Which inode the path names now: from the image's mdcache (a change an
		// administrator makes to the image shows within CacheTTL, as for GETATTR), or from
		// the node's state.
		var err error
		if o.loc.layer == layerBase {
			err = v.statLoc(o.loc, st)
		} else {
			err = v.statUncached(o.loc, st)
		}
		if err != nil {
			return nil, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			if f := files.get(key, st.Dev, st.Ino); f != nil {
				if o.loc.layer == layerBase {
					// Fresh attributes of the inode read: the image's file may have been
					// rewritten in place since the mdcache entry was made.
					if err := fstat(f.fd, st); err != nil {
						files.release(f)
						return nil, err
					}
				}
				return f, nil
			}
		}
		k := *st
		known = &k
	}
	// Open by path: the inode opened is the one the reply describes.
	pfd, err := v.openLoc(o.loc)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	if err := fstat(pfd, st); err != nil {
		return nil, err
	}
	if o.loc.layer == layerBase && known != nil && (known.Dev != st.Dev || known.Ino != st.Ino) {
		v.x.cache.putStat(o.loc.rel, st) // the image's file was replaced: refresh the mdcache
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		// Never open devices or FIFOs of a node's writable area on the server.
		return nil, nil
	}
	rfd, err := reopen(pfd, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return files.add(key, rfd, st.Dev, st.Ino), nil
}

// forgetFile drops a cached descriptor of l, a path of the node's state just removed or
// renamed.
func (v *view) forgetFile(l loc) {
	if l.layer == layerState {
		v.x.files.drop(fileKey{x: v.x, v: v, rel: l.rel})
	}
}
