package batchconn

import (
	"net"
	"net/netip"
	"testing"
)

// With offload, a queue whose datagrams make no runs (each to another
// destination than the last) is sent at BatchSize datagrams, as without
// offload; one whose datagrams make runs, in WriteTo order or once
// grouped by destination, gathers more.
func TestQueueWithoutRunsIsSentAtABatch(t *testing.T) {
	const batch = 16
	sinks := make([]netip.AddrPort, 2*batch)
	for i := range sinks {
		s := listenLoopback(t)
		defer s.Close()
		sinks[i] = s.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	p := make([]byte, 100)
	for _, tc := range []struct {
		name   string
		cfg    Config
		dst    func(i int) netip.AddrPort
		full   uint64 // sends of a full queue after 2*batch datagrams
		queued int32
	}{
		{"each to another destination", Config{}, func(i int) netip.AddrPort { return sinks[i] }, 2, 0},
		{"round-robin", Config{}, func(i int) netip.AddrPort { return sinks[i%4] }, 0, 2 * batch},
		{"round-robin, strict order", Config{StrictOrder: true}, func(i int) netip.AddrPort { return sinks[i%4] }, 2, 0},
		{"runs of 4", Config{}, func(i int) netip.AddrPort { return sinks[i/4%4] }, 0, 2 * batch},
		{"runs of 4, strict order", Config{StrictOrder: true}, func(i int) netip.AddrPort { return sinks[i/4%4] }, 0, 2 * batch},
		{"one destination", Config{}, func(int) netip.AddrPort { return sinks[0] }, 0, 2 * batch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.BatchSize = batch
			c, _ := queuedPair(t, cfg)
			if !c.b().w.io.segments() {
				t.Skip("the kernel has no UDP GSO")
			}
			for i := range 2 * batch {
				if _, err := c.WriteToUDPAddrPort(p, tc.dst(i)); err != nil {
					t.Fatal(err)
				}
			}
			if s := c.Stats(); s.FlushFull != tc.full || c.b().w.queued.Load() != tc.queued {
				t.Fatalf("after %d datagrams: %d full sends, %d queued; want %d, %d",
					2*batch, s.FlushFull, c.b().w.queued.Load(), tc.full, tc.queued)
			}
		})
	}
}
