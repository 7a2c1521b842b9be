//go:build !linux

package batchconn

// newFlushTimer: elsewhere, the runtime's timer.
func newFlushTimer(f func()) flushTimer { return newGoTimer(f) }
