package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provkit/provkit/cluster"
)

// views keeps a current cluster.View and reloads it when the store's generation moves, so
// every answer (DHCP, boot configs, DNS) reflects the tables within one poll interval,
// without a restart or a reload command.
type views struct {
	store    *cluster.DB
	interval time.Duration
	log      *slog.Logger

	cur     atomic.Pointer[cluster.View]
	reloads atomic.Int64
	mu      sync.Mutex // serialises reloads
}

func newViews(ctx context.Context, s *cluster.DB, interval time.Duration, log *slog.Logger) (*views, error) {
	w := &views{store: s, interval: interval, log: log}
	if err := w.reload(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// Current returns the newest view.
func (w *views) Current() *cluster.View { return w.cur.Load() }

// Fresh reloads the view first if the store changed since it was read; callers that act on
// a single node's latest state (the status API) use it.
func (w *views) Fresh(ctx context.Context) *cluster.View {
	if g, err := w.store.Generation(ctx); err == nil && g != w.Current().Generation {
		if err := w.reload(ctx); err != nil {
			w.log.Warn("reload", "err", err)
		}
	}
	return w.Current()
}

func (w *views) reload(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur := w.cur.Load(); cur != nil {
		if g, err := w.store.Generation(ctx); err == nil && g == cur.Generation {
			return nil
		}
	}
	v, err := cluster.LoadView(ctx, w.store)
	if err != nil {
		return err
	}
	w.cur.Store(v)
	w.reloads.Add(1)
	return nil
}

// Serve polls the store's generation until ctx ends.
func (w *views) Serve(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if g, err := w.store.Generation(ctx); err != nil {
				if ctx.Err() == nil {
					w.log.Warn("store generation", "err", err)
				}
			} else if g != w.Current().Generation {
				if err := w.reload(ctx); err != nil && ctx.Err() == nil {
					w.log.Warn("reload", "err", err)
				}
			}
		}
	}
}
