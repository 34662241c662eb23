package testenv

import (
	"runtime"
	"testing"
	"time"
)

// NoGoroutineLeak fails tb if goroutines started during it are still running at its end
// (a server must stop everything it starts), waiting up to 5 s for them to finish. Call it
// first in the test, so that its check runs after the test's other clean-ups.
func NoGoroutineLeak(tb testing.TB) {
	tb.Helper()
	before := runtime.NumGoroutine()
	tb.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				tb.Errorf("%d goroutines left, %d before the test:\n%s", runtime.NumGoroutine(), before, buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
