package batchconn

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"testing"
	"time"
)

// Benchmarks come in pairs, BenchmarkX/plain/... and BenchmarkX/batchconn/...,
// so that benchstat sets them side by side. Each reports datagrams/s. The
// bulk ones have a third beside them on Linux, BenchmarkX/bare/..., a bare
// loop that does the conn's work and nothing else
// (bench_bare_linux_test.go): batchconn over bare is what the code costs,
// batchconn over plain what a user gains on this machine.

var benchKinds = []kind{kinds[0], kinds[1]}

var benchSizes = []int{64, 1200}

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "datagrams/s")
}

// BenchmarkWriteTo: one goroutine writing to one destination, counted
// until Close returns. The sink does not read: the kernel drops what
// overflows its buffer, on both sides of the comparison alike.
func BenchmarkWriteTo(b *testing.B) {
	for _, size := range benchSizes {
		benchBareWrites(b, "bare/"+strconv.Itoa(size)+"B", size, 1)
		for _, k := range benchKinds {
			b.Run(k.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				sink := listenLoopback(b)
				defer sink.Close()
				conn := k.wrap(listenLoopback(b))
				dst := sink.LocalAddr()
				p := make([]byte, size)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := conn.WriteTo(p, dst); err != nil {
						b.Fatal(err)
					}
				}
				if err := conn.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				reportRate(b, b.N)
				reportShape(b, conn)
			})
		}
	}
}

// BenchmarkWriteToUDPAddrPort is BenchmarkWriteTo round-robin over 16
// destinations, through WriteToUDPAddrPort.
func BenchmarkWriteToUDPAddrPort(b *testing.B) {
	benchBareWrites(b, "bare/64B/16dst", 64, 16)
	for _, k := range benchKinds {
		b.Run(k.name+"/64B/16dst", func(b *testing.B) { benchRoundRobin(b, k, 64, 16) })
	}
}

// benchSinks opens n sockets on loopback that never read, closed when the
// benchmark ends, and returns their addresses.
func benchSinks(b *testing.B, n int) []netip.AddrPort {
	var dsts []netip.AddrPort
	for range n {
		sink := listenLoopback(b)
		b.Cleanup(func() { sink.Close() })
		dsts = append(dsts, sink.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return dsts
}

// benchRoundRobin writes size-byte datagrams round-robin to ndst sinks
// that do not read, through WriteToUDPAddrPort, counted until Close returns.
func benchRoundRobin(b *testing.B, k kind, size, ndst int) {
	dsts := benchSinks(b, ndst)
	conn := k.wrap(listenLoopback(b)).(interface {
		net.PacketConn
		WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
	})
	p := make([]byte, size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := conn.WriteToUDPAddrPort(p, dsts[i%ndst]); err != nil {
			b.Fatal(err)
		}
	}
	conn.Close()
	b.StopTimer()
	reportRate(b, b.N)
	reportShape(b, conn)
}

// reportShape reports, for a batchconn, how many datagrams a system call
// carried and the share sent alone at once: what the queue made of the
// writes.
func reportShape(b *testing.B, conn net.PacketConn) {
	if c, ok := conn.(*PacketConn); ok && c.Batching() {
		s := c.Stats()
		b.ReportMetric(float64(s.DatagramsWritten)/float64(max(s.WriteCalls, 1)), "datagrams/call")
		b.ReportMetric(100*float64(s.FlushIdle)/float64(max(s.DatagramsWritten, 1)), "%alone")
	}
}

// BenchmarkReadFrom: one goroutine draining a socket's queue with
// ReadFrom. The queue is filled between timed drains, by a batching sender
// (sendmmsg, no segmentation offload), so that only the receiver's work is
// measured and no sender competes with it for the CPU.
func BenchmarkReadFrom(b *testing.B) {
	benchReadFrom(b, &Config{NoOffload: true})
}

// BenchmarkReadFromGSOPeer is BenchmarkReadFrom with a sender that uses
// UDP GSO, so that a receiver with GRO gets its datagrams coalesced.
func BenchmarkReadFromGSOPeer(b *testing.B) {
	benchReadFrom(b, nil)
}

// BenchmarkReadFromUDPAddrPortGSOPeer is BenchmarkReadFromGSOPeer through
// ReadFromUDPAddrPort, which allocates nothing: the ring's own cost.
func BenchmarkReadFromUDPAddrPortGSOPeer(b *testing.B) {
	benchReadFromAs(b, nil, func(c net.PacketConn, p []byte) error {
		_, _, err := c.(interface {
			ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
		}).ReadFromUDPAddrPort(p)
		return err
	})
}

// fill is how many datagrams one fill queues: few enough that the
// receive buffer (8 MiB where net.core.rmem_max allows 4) drops none.
const fill = 1500

func benchReadFrom(b *testing.B, senderCfg *Config) {
	benchReadFromAs(b, senderCfg, func(c net.PacketConn, p []byte) error {
		_, _, err := c.ReadFrom(p)
		return err
	})
}

func benchReadFromAs(b *testing.B, senderCfg *Config, read func(net.PacketConn, []byte) error) {
	for _, size := range benchSizes {
		benchBareReads(b, "bare/"+strconv.Itoa(size)+"B", senderCfg, size)
		for _, k := range benchKinds {
			b.Run(k.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				benchDrain(b, senderCfg, size, func(rx *net.UDPConn) drainer {
					conn := k.wrap(rx)
					return drainer{conn.SetReadDeadline, func(p []byte) error { return read(conn, p) }, conn.Close}
				})
			})
		}
	}
}

// A drainer is what a read benchmark empties the receiving socket with:
// the conn under test, or a bare loop on the socket itself.
type drainer struct {
	setDeadline func(time.Time) error
	read        func(p []byte) error
	close       func() error
}

// benchDrain is the read benchmarks' harness: open makes the drainer of
// the receiving socket, which reads the fills of a sender with senderCfg.
func benchDrain(b *testing.B, senderCfg *Config, size int, open func(rx *net.UDPConn) drainer) {
	rx := listenLoopback(b)
	rx.SetReadBuffer(8 << 20)
	d := open(rx)
	defer d.close()
	tx := New(listenLoopback(b), senderCfg)
	defer tx.Close()
	out := make([]byte, size)
	p := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		for range fill {
			tx.WriteTo(out, rx.LocalAddr())
		}
		tx.Flush()
		b.StartTimer()
		d.setDeadline(time.Now().Add(time.Second))
		n := min(fill, b.N-done)
		for range n {
			if err := d.read(p); err != nil {
				b.Fatalf("after %d datagrams: %v (the kernel dropped some: lower fill)", done, err)
			}
			done++
		}
		b.StopTimer()
		if n < fill {
			// Drain what this round did not read, untimed. A round that
			// read its fill left nothing: a drop would have failed it.
			d.setDeadline(time.Now().Add(10 * time.Millisecond))
			for {
				if err := d.read(p); err != nil {
					break
				}
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportRate(b, b.N)
}

// BenchmarkPingPong: an unchanged echo server loop on the conn under test,
// a plain client with one 64-byte request in flight. Reports the round
// trip's median and 99th percentile.
func BenchmarkPingPong(b *testing.B) {
	for _, k := range benchKinds {
		b.Run(k.name+"/64B", func(b *testing.B) {
			srv := k.wrap(listenLoopback(b))
			echoOn(srv)
			defer srv.Close()
			cl := listenLoopback(b)
			defer cl.Close()
			p := make([]byte, 64)
			rtts := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				cl.WriteTo(p, srv.LocalAddr())
				if _, _, err := cl.ReadFrom(p); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
			b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-µs")
			reportRate(b, b.N)
		})
	}
}

// BenchmarkPingPongAlternating is BenchmarkPingPong with plain's and
// batchconn's echo servers measured in turn, in short blocks within one
// run, so that both see the same machine and its bursts of noise fall on
// both alike: each kind's p50 and p99, and batchconn's over plain's.
func BenchmarkPingPongAlternating(b *testing.B) {
	b.Run("64B", func(b *testing.B) {
		var srvs []net.Addr
		for _, k := range benchKinds {
			srv := k.wrap(listenLoopback(b))
			echoOn(srv)
			defer srv.Close()
			srvs = append(srvs, srv.LocalAddr())
		}
		cl := listenLoopback(b)
		defer cl.Close()
		cl.SetReadDeadline(time.Now().Add(time.Minute))
		p := make([]byte, 64)
		alternate(b, 100, 300, func(k int) (time.Duration, error) {
			start := time.Now()
			if _, err := cl.WriteTo(p, srvs[k]); err != nil {
				return 0, err
			}
			_, _, err := cl.ReadFromUDPAddrPort(p)
			return time.Since(start), err
		})
	})
}

// alternate runs blocks of n measurements of each of benchKinds in turn,
// kind after kind, blocks times a b.N, after an untimed block of each to
// warm up, and reports the quantiles of what measure(kind) returned.
func alternate(b *testing.B, blocks, n int, measure func(k int) (time.Duration, error)) {
	samples := make([][]time.Duration, len(benchKinds))
	for k := range samples {
		samples[k] = make([]time.Duration, 0, b.N*blocks*n)
	}
	run := func(k int, keep bool) {
		for range n {
			d, err := measure(k)
			if err != nil {
				b.Fatalf("%s: %v", benchKinds[k].name, err)
			}
			if keep {
				samples[k] = append(samples[k], d)
			}
		}
	}
	for k := range benchKinds {
		run(k, false)
	}
	b.ResetTimer()
	for range b.N * blocks {
		for k := range benchKinds {
			run(k, true)
		}
	}
	b.StopTimer()
	q := make([][]float64, len(benchKinds)) // p50 and p99 of each kind, in µs
	for k, s := range samples {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		for _, at := range []float64{0.50, 0.99} {
			v := float64(s[int(at*float64(len(s)-1))].Nanoseconds()) / 1e3
			q[k] = append(q[k], v)
		}
		b.ReportMetric(q[k][0], benchKinds[k].name+"-p50-µs")
		b.ReportMetric(q[k][1], benchKinds[k].name+"-p99-µs")
	}
	// benchKinds are plain, then batchconn.
	b.ReportMetric(q[1][0]/q[0][0], "p50-batchconn/plain")
	b.ReportMetric(q[1][1]/q[0][1], "p99-batchconn/plain")
}

// BenchmarkFreshConn: the commonest UDP client, a fresh socket per query
// (as DNS clients dial one per exchange): dial, wrap, one query and its
// reply from a plain echo server, close.
func BenchmarkFreshConn(b *testing.B) {
	for _, k := range benchKinds {
		b.Run(k.name+"/40B", func(b *testing.B) {
			srv := echoServer(b)
			q, p := make([]byte, 40), make([]byte, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				exchange(b, k, srv, q, p).Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// BenchmarkIdleConns: 2000 conns that each exchanged one datagram, then
// stay open; reports the heap each holds after two collections.
func BenchmarkIdleConns(b *testing.B) {
	const n = 2000
	for _, k := range benchKinds {
		b.Run(k.name, func(b *testing.B) {
			srv := echoServer(b)
			q, p := make([]byte, 40), make([]byte, 2048)
			var held float64
			for range b.N {
				before := heapInUse()
				conns := make([]net.PacketConn, n)
				for i := range conns {
					conns[i] = exchange(b, k, srv, q, p)
				}
				held += float64(heapInUse()-before) / n
				for _, c := range conns {
					c.Close()
				}
			}
			b.ReportMetric(held/float64(b.N), "heap-B/conn")
		})
	}
}

// BenchmarkFanout: 1200-byte datagrams round-robin to 16 destinations, as
// a media relay or game server sends, on plain, on batchconn as it comes
// (grouped by destination) and on batchconn with StrictOrder. The sinks do
// not read.
func BenchmarkFanout(b *testing.B) {
	fanKinds := append(benchKinds[:2:2], kind{"strict", func(uc *net.UDPConn) net.PacketConn {
		return New(uc, &Config{StrictOrder: true})
	}})
	benchBareWrites(b, "bare/1200B/16dst", 1200, 16)
	for _, k := range fanKinds {
		b.Run(k.name+"/1200B/16dst", func(b *testing.B) { benchRoundRobin(b, k, 1200, 16) })
	}
}

// BenchmarkWildcardEcho: an echo server on 0.0.0.0, which learns and sets
// each peer's reply source, against the same with KernelChoosesSource and
// plain; a plain client keeps 64 requests in flight.
func BenchmarkWildcardEcho(b *testing.B) {
	for _, k := range append(benchKinds[:2:2], kind{"kernel-chooses", func(uc *net.UDPConn) net.PacketConn {
		return New(uc, &Config{KernelChoosesSource: true})
	}}) {
		b.Run(k.name+"/64B", func(b *testing.B) {
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{})
			if err != nil {
				b.Fatal(err)
			}
			srv := k.wrap(uc)
			defer srv.Close()
			echoOn(srv)
			cl := listenLoopback(b)
			defer cl.Close()
			cl.SetReadBuffer(1 << 20)
			dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: uc.LocalAddr().(*net.UDPAddr).Port}
			p := make([]byte, 64)
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				burst := min(64, b.N-sent)
				for range burst {
					cl.WriteTo(p, dst)
				}
				cl.SetReadDeadline(time.Now().Add(5 * time.Second))
				for range burst {
					if _, _, err := cl.ReadFrom(p); err != nil {
						b.Fatal(err)
					}
				}
				sent += burst
			}
			b.StopTimer()
			reportRate(b, b.N)
		})
	}
}

// BenchmarkEcho: an echo server on the conn under test (plain, batchconn,
// batchconn without offload), a batchconn client keeping 64 requests of
// 64 bytes in flight, as cmd/batchbench's echo.
func BenchmarkEcho(b *testing.B) {
	for _, k := range append(benchKinds[:2:2], kind{"nooffload", func(uc *net.UDPConn) net.PacketConn {
		return New(uc, &Config{NoOffload: true})
	}}) {
		b.Run(k.name+"/64B", func(b *testing.B) {
			srv := k.wrap(listenLoopback(b))
			defer srv.Close()
			echoOn(srv)
			cl := New(listenLoopback(b), nil)
			defer cl.Close()
			dst := srv.LocalAddr().(*net.UDPAddr).AddrPort()
			req, reply := make([]byte, 64), make([]byte, 65535)
			cl.SetReadDeadline(time.Now().Add(time.Minute))
			b.ResetTimer()
			inFlight, sent := 0, 0
			for done := 0; done < b.N; {
				for inFlight < 64 && sent < b.N {
					cl.WriteToUDPAddrPort(req, dst)
					inFlight++
					sent++
				}
				if _, _, err := cl.ReadFromUDPAddrPort(reply); err != nil {
					b.Fatalf("after %d replies: %v", done, err)
				}
				inFlight--
				done++
			}
			b.StopTimer()
			reportRate(b, b.N)
		})
	}
}
