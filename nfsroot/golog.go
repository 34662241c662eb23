package nfsroot

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	nfs "github.com/willscott/go-nfs"
)

// go-nfs logs through a package variable (nfs.Log), by default with the standard library's
// log package at info level. A library must not print on its own, so the first Serve of the
// process routes go-nfs's messages to its Logger, at debug level (they are about calls that
// nfsroot answers with an NFS status anyway), unless the program installed a logger of its
// own with nfs.SetLogger before. It is done once: nfs.Log is read without synchronization
// by go-nfs's goroutines.
var goNFSLog sync.Once

func routeGoNFSLog(l *slog.Logger) {
	goNFSLog.Do(func() {
		if _, ok := nfs.Log.(*nfs.DefaultLogger); ok {
			nfs.SetLogger(&goNFSLogger{l: l.With("component", "go-nfs")})
		}
	})
}

// goNFSLogger adapts slog to go-nfs's Logger.
type goNFSLogger struct {
	l     *slog.Logger
	level nfs.LogLevel
}

func (g *goNFSLogger) SetLevel(level nfs.LogLevel) { g.level = level }
func (g *goNFSLogger) GetLevel() nfs.LogLevel      { return g.level }
func (g *goNFSLogger) ParseLevel(level string) (nfs.LogLevel, error) {
	return (&nfs.DefaultLogger{}).ParseLevel(level)
}

func (g *goNFSLogger) log(args ...any) {
	g.l.Log(context.Background(), slog.LevelDebug, fmt.Sprint(args...))
}

func (g *goNFSLogger) logf(format string, args ...any) {
	g.l.Log(context.Background(), slog.LevelDebug, fmt.Sprintf(format, args...))
}

func (g *goNFSLogger) Panic(args ...any) { g.log(args...); panic(fmt.Sprint(args...)) }
func (g *goNFSLogger) Fatal(args ...any) { g.log(args...) }
func (g *goNFSLogger) Error(args ...any) { g.log(args...) }
func (g *goNFSLogger) Warn(args ...any)  { g.log(args...) }
func (g *goNFSLogger) Info(args ...any)  { g.log(args...) }
func (g *goNFSLogger) Debug(args ...any) {}
func (g *goNFSLogger) Trace(args ...any) {}
func (g *goNFSLogger) Print(args ...any) { g.log(args...) }
func (g *goNFSLogger) Panicf(format string, args ...any) {
	g.logf(format, args...)
	panic(fmt.Sprintf(format, args...))
}
func (g *goNFSLogger) Fatalf(format string, args ...any) { g.logf(format, args...) }
func (g *goNFSLogger) Errorf(format string, args ...any) { g.logf(format, args...) }
func (g *goNFSLogger) Warnf(format string, args ...any)  { g.logf(format, args...) }
func (g *goNFSLogger) Infof(format string, args ...any)  { g.logf(format, args...) }
func (g *goNFSLogger) Debugf(string, ...any)             {}
func (g *goNFSLogger) Tracef(string, ...any)             {}
func (g *goNFSLogger) Printf(format string, args ...any) { g.logf(format, args...) }

var _ nfs.Logger = (*goNFSLogger)(nil)
