//go:build linux

// Package repro holds reproductions of batchconn behaviours that the
// integration tests ran into, kept as regression tests once fixed.
package repro

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
	"golang.org/x/sys/unix"
)

// echo starts a plain UDP echo server on loopback.
func echo(tb testing.TB) *net.UDPConn {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { uc.Close() })
	uc.SetReadBuffer(4 << 20) // no request dropped, however late the server runs
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			uc.WriteTo(buf[:n], a)
		}
	}()
	return uc
}

// TestFreshConnsFirstRead: many fresh connected sockets, each wrapped by
// batchconn, each sending one request and reading the reply with a 2s
// deadline, as a pool of DNS clients would. The first read of each conn
// used to allocate the whole read ring, BatchSize x ReadSlotSize bytes
// (4 MiB by default, 64 MiB at BatchSize 1024), under the read lock and
// before any recvmmsg: with 256 conns at once (1 GiB) on a 2-core VM, or
// 16 conns at BatchSize 1024, some reads failed with "i/o timeout" while
// the reply sat in the socket's receive queue (SIOCINQ > 0). The ring now
// starts with one slot and grows with load; plain and batchconn must both
// pass. REPRO_CONNS and REPRO_BATCH run other sizes:
//
//	REPRO_CONNS=1024 REPRO_BATCH=1024 go test ./repro -run FreshConns -v
func TestFreshConnsFirstRead(t *testing.T) {
	srv := echo(t)
	cases := []struct{ conns, batch int }{{256, 0}, {16, 1024}}
	if v, err := strconv.Atoi(os.Getenv("REPRO_CONNS")); err == nil {
		cases = []struct{ conns, batch int }{{v, 0}}
		if b, err := strconv.Atoi(os.Getenv("REPRO_BATCH")); err == nil {
			cases[0].batch = b
		}
	}
	for _, c := range cases {
		for _, kind := range []string{"plain", "batchconn"} {
			t.Run(fmt.Sprintf("%s/%dconns/batch%d", kind, c.conns, c.batch), func(t *testing.T) {
				// Several rounds: the first allocates fresh memory from
				// the OS; the later ones reuse what the GC freed, which
				// must be zeroed (and faulted in again once scavenged).
				for round := range 4 {
					if !oneRound(t, srv, kind, c.conns, c.batch, round) {
						return
					}
				}
			})
		}
	}
}

// oneRound runs conns requests at once and reports whether all passed.
func oneRound(t *testing.T, srv *net.UDPConn, kind string, conns, batch, round int) bool {
	errs := make(chan error, conns)
	for c := range conns {
		go func() {
			errs <- func() error {
				uc, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
				if err != nil {
					return err
				}
				var conn net.Conn = uc
				if kind == "batchconn" {
					conn = batchconn.New(uc, &batchconn.Config{BatchSize: batch})
				}
				defer conn.Close()
				msg := fmt.Sprintf("round %d request %d", round, c)
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Write([]byte(msg)); err != nil {
					return err
				}
				buf := make([]byte, 2048)
				start := time.Now()
				n, err := conn.Read(buf)
				if err != nil {
					took := time.Since(start).Round(time.Millisecond)
					waiting := func() int {
						var inq int
						if rc, rerr := uc.SyscallConn(); rerr == nil {
							rc.Control(func(fd uintptr) { inq, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
						}
						return inq
					}
					atDeadline := waiting()
					time.Sleep(3 * time.Second)
					var st batchconn.Stats
					if bc, ok := conn.(*batchconn.PacketConn); ok {
						st = bc.Stats()
					}
					return fmt.Errorf("%s: read after %v: %v; reply bytes in the socket at the deadline: %d, 3s later: %d; batchconn read %d datagrams in %d calls",
						msg, took, err, atDeadline, waiting(), st.DatagramsRead, st.ReadCalls)
				}
				if string(buf[:n]) != msg {
					return fmt.Errorf("%s: got %q", msg, buf[:n])
				}
				return nil
			}()
		}()
	}
	failed := 0
	for range conns {
		if err := <-errs; err != nil {
			if failed < 5 {
				t.Error(err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("round %d: %d of %d requests failed", round, failed, conns)
	}
	return failed == 0
}

// BenchmarkFreshConnExchange measures one request/response on a fresh
// connected socket: the cost of the first read's ring allocation, which a
// short-lived socket (dns.Client.Exchange dials one per query) pays every
// time.
func BenchmarkFreshConnExchange(b *testing.B) {
	srv := echo(b)
	for _, kind := range []string{"plain", "batchconn"} {
		b.Run(kind, func(b *testing.B) {
			buf := make([]byte, 2048)
			b.ReportAllocs()
			for range b.N {
				uc, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
				if err != nil {
					b.Fatal(err)
				}
				var conn net.Conn = uc
				if kind == "batchconn" {
					conn = batchconn.New(uc, nil)
				}
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				conn.Write([]byte("hello"))
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
		})
	}
}
