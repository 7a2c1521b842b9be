//go:build !linux

package main

import "time"

// pinToCPU does nothing: elsewhere batchconn is plain, and its datagrams
// leave from the writer's goroutine alone.
func pinToCPU(int) error { return nil }

func pause(d time.Duration) { time.Sleep(d) }
