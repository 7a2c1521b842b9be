//go:build !unix

package main

import "time"

// processCPU is not measured here: no getrusage.
func processCPU() (cpu time.Duration, ok bool) { return 0, false }
