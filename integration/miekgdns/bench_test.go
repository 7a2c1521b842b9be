package miekgdns

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchconn/batchconn/integration/internal/itest"
	"github.com/miekg/dns"
)

// BenchmarkServer measures the dns.Server on each kind of socket: 16
// client goroutines, each with a plain connected socket of its own, send
// queries one after another; the server answers each from a goroutine
// of its own. Only the server's socket changes between the sub-benchmarks.
//
//	go test -run XXX -bench Server -benchtime 20000x
func BenchmarkServer(b *testing.B) {
	const workers = 16
	for _, kind := range itest.Kinds {
		b.Run(kind.Name, func(b *testing.B) {
			s := startServer(b, kind, 0)
			client := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			var next atomic.Int64
			errc := make(chan error, workers)
			b.ResetTimer()
			start := time.Now()
			for range workers {
				go func() {
					errc <- func() error {
						co := &dns.Conn{Conn: itest.DialUDP(b, itest.Plain, s.addr())}
						defer co.Close()
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								return nil
							}
							r, _, err := client.ExchangeWithConn(query(i), co)
							if err != nil {
								return err
							}
							if err := check(i, r); err != nil {
								return err
							}
						}
					}()
				}()
			}
			for range workers {
				if err := <-errc; err != nil {
					b.Error(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
			b.StopTimer()
			if err := s.stop(); err != nil {
				b.Error(err)
			}
		})
	}
}
