// Command stocknfs serves a directory with the stock go-nfs v0.0.4 setup (osfs,
// NullAuthHandler, CachingHandler), the baseline that bench/nfsroot compares nfsroot with.
//
//	stocknfs -root DIR -listen 10.94.0.1:2049 [-limit 1048576]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	nfshelper "github.com/willscott/go-nfs/helpers"
)

func main() {
	root := flag.String("root", "", "directory to export")
	listen := flag.String("listen", "127.0.0.1:2049", "TCP address to serve NFS and MOUNT on")
	limit := flag.Int("limit", 1<<20, "CachingHandler handle limit (go-nfs example: 1024)")
	flag.Parse()
	if *root == "" {
		log.Fatal("stocknfs: -root is required")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("stocknfs: %v", err)
	}
	fsys := changeFS{osfs.New(*root)}
	h := nfshelper.NewCachingHandler(nfshelper.NewNullAuthHandler(fsys), *limit)
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		l.Close()
	}()
	fmt.Printf("stocknfs serving %s on %s\n", *root, l.Addr())
	if err := nfs.Serve(l, h); err != nil && !isClosed(err) {
		log.Fatalf("stocknfs: %v", err)
	}
}

func isClosed(err error) bool { return err != nil && errorsIsClosed(err) }

func errorsIsClosed(err error) bool {
	ne, ok := err.(*net.OpError)
	return ok && ne.Err.Error() == "use of closed network connection"
}

// changeFS adds billy.Change to osfs, as go-nfs's osnfs example does.
type changeFS struct{ billy.Filesystem }

func (f changeFS) Chmod(name string, mode os.FileMode) error {
	return os.Chmod(f.Join(f.Root(), name), mode)
}
func (f changeFS) Lchown(name string, uid, gid int) error {
	return os.Lchown(f.Join(f.Root(), name), uid, gid)
}
func (f changeFS) Chown(name string, uid, gid int) error {
	return os.Chown(f.Join(f.Root(), name), uid, gid)
}
func (f changeFS) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(f.Join(f.Root(), name), atime, mtime)
}
