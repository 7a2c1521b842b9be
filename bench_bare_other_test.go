//go:build !linux

package batchconn

import "testing"

// Bare loops need recvmmsg, sendmmsg and UDP offload: Linux only
// (bench_bare_linux_test.go). Elsewhere the benchmarks have no bare case.

func benchBareReads(*testing.B, string, *Config, int) {}

func benchBareWrites(*testing.B, string, int, int) {}
