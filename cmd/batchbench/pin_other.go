//go:build !linux

package main

// pinToCPU does nothing: elsewhere batchconn is plain, and its datagrams
// leave from the writer's goroutine alone.
func pinToCPU(int) error { return nil }
