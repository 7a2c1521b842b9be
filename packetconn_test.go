package batchconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewReturnsPacketConnAsIs(t *testing.T) {
	uc, peer := diffCase{}.listen(t)
	defer peer.Close()
	c := New(uc, nil)
	defer c.Close()
	if New(c, &Config{BatchSize: 3}) != c {
		t.Fatal("New(*PacketConn) wrapped it again")
	}
}

func TestNewNilFailsAsZeroUDPConn(t *testing.T) {
	c := New(nil, nil)
	plain := new(net.UDPConn)
	p := make([]byte, 8)
	_, _, err1 := c.ReadFrom(p)
	_, _, err2 := plain.ReadFrom(p)
	if describe(err1) != describe(err2) {
		t.Errorf("ReadFrom = %s, plain %s", describe(err1), describe(err2))
	}
	_, err1 = c.WriteTo(p, &net.UDPAddr{})
	_, err2 = plain.WriteTo(p, &net.UDPAddr{})
	if describe(err1) != describe(err2) {
		t.Errorf("WriteTo = %s, plain %s", describe(err1), describe(err2))
	}
	if c.LocalAddr() != nil || c.Close() == nil || c.SetDeadline(time.Now()) == nil || c.Flush() != nil {
		t.Error("a nil conn's methods must fail as a zero *net.UDPConn's do")
	}
}

// wrapped is a user's own net.PacketConn wrapper: batchconn cannot reach
// its socket and serves it one datagram at a time.
type wrapped struct{ net.PacketConn }

func TestWrapperIsServedOneAtATime(t *testing.T) {
	uc, peer := diffCase{}.listen(t)
	defer peer.Close()
	c := New(wrapped{uc}, nil)
	defer c.Close()
	c.WriteTo([]byte("through"), peer.LocalAddr())
	if got := readN(t, peer, 1); got[0] != "through" {
		t.Fatalf("peer got %q", got)
	}
	peer.WriteTo([]byte("back"), c.LocalAddr())
	p := make([]byte, 16)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, ap, err := c.ReadFromUDPAddrPort(p)
	if err != nil || string(p[:n]) != "back" || ap != peer.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("ReadFromUDPAddrPort = %q %v %v", p[:n], ap, err)
	}
	if _, err := c.WriteToUDP([]byte("via WriteToUDP"), peer.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatalf("WriteToUDP: %v", err)
	}
	if got := readN(t, peer, 1); got[0] != "via WriteToUDP" {
		t.Fatalf("peer got %q", got)
	}
	peer.WriteTo([]byte("to ReadFromUDP"), c.LocalAddr())
	n, ua, err := c.ReadFromUDP(p)
	if err != nil || string(p[:n]) != "to ReadFromUDP" || ua.AddrPort() != peer.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("ReadFromUDP = %q %v %v", p[:n], ua, err)
	}
	if s := c.Stats(); s != (Stats{}) {
		t.Fatalf("Stats = %+v: a pass-through conn batches nothing", s)
	}
}

func TestCloseAfterDeadlineCountsWhatItCouldNotSend(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	c.WriteTo([]byte("a"), peer.LocalAddr())
	c.WriteTo([]byte("b"), peer.LocalAddr())
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if err := c.Close(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Close = %v, want os.ErrDeadlineExceeded for the unsent queue", err)
	}
	if s := c.Stats(); s.WriteFailures != 2 {
		t.Fatalf("Stats = %+v, want the 2 unsent datagrams counted", s)
	}
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, k := range []struct {
		cfg Config
		h   hooks
	}{{}, {h: hooks{idleGap: time.Hour}}, {Config{MaxDelay: time.Nanosecond}, hooks{idleGap: time.Hour}}} {
		a, b := diffCase{}.listen(t)
		src, dst := newConn(a, &k.cfg, k.h), newConn(b, &k.cfg, k.h)
		wait := make(chan struct{})
		go func() {
			defer close(wait)
			p := make([]byte, 64)
			for {
				if _, _, err := dst.ReadFrom(p); err != nil {
					return
				}
			}
		}()
		for i := range 100 {
			src.WriteTo([]byte{byte(i)}, dst.LocalAddr())
		}
		src.Close()
		dst.Close()
		<-wait
	}
}

// TestCloseRacesEverything closes conns while readers, writers, Flush and
// deadline changes run, many times over: nothing may panic, block for good
// or be left running.
func TestCloseRacesEverything(t *testing.T) {
	defer goleak.VerifyNone(t)
	rounds := 2000
	if testing.Short() {
		rounds = 100
	}
	var moved atomic.Int64 // datagrams read in all rounds: the races ran with traffic
	defer func() {
		if moved.Load() == 0 {
			t.Errorf("no datagram moved in %d rounds: Close raced nothing", rounds)
		}
		t.Logf("%d rounds, %d datagrams moved", rounds, moved.Load())
	}()
	for round := range rounds {
		a, b := diffCase{}.listen(t)
		src := newConn(a, &Config{BatchSize: 1 + round%8}, hooks{idleGap: time.Duration(round%3) * time.Hour})
		dst := New(b, nil)
		var wg sync.WaitGroup
		run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
		for range 2 {
			run(func() {
				p := make([]byte, 64)
				for {
					_, _, err := dst.ReadFrom(p)
					if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
						return
					}
					if err == nil {
						moved.Add(1)
					}
					runtime.Gosched() // take turns: a spinning loop holds its P for 10ms
				}
			})
			run(func() {
				p := make([]byte, 32)
				for {
					if _, err := src.WriteTo(p, dst.LocalAddr()); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
						return
					}
					runtime.Gosched()
				}
			})
		}
		run(func() {
			for !errors.Is(src.Flush(), net.ErrClosed) {
				runtime.Gosched()
			}
		})
		run(func() {
			for i := 0; ; i++ {
				d := time.Now().Add(time.Duration(i%3-1) * time.Millisecond)
				if src.SetDeadline(d) != nil || dst.SetReadDeadline(d) != nil {
					return
				}
				runtime.Gosched()
			}
		})
		// Close at varied moments: before the goroutines run, as they
		// start, and (one round in ten, a sleep being long here while
		// they spin) well into their work.
		if round%10 == 9 {
			time.Sleep(200 * time.Microsecond)
		} else {
			for range round % 7 {
				runtime.Gosched()
			}
		}
		closed := make(chan struct{})
		go func() {
			src.Close()
			dst.Close()
			wg.Wait()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: goroutines still blocked 10s after Close", round)
		}
	}
}

// stream sends n numbered datagrams from one goroutine and checks that the
// receiver gets all of them, in order. The sender keeps at most window
// datagrams ahead of the receiver so that the kernel has no reason to drop.
func stream(t *testing.T, src, dst net.PacketConn, n, window int) {
	t.Helper()
	received := make(chan int, n)
	errc := make(chan error, 1)
	go func() {
		p := make([]byte, 64)
		for i := range n {
			dst.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, _, err := dst.ReadFrom(p)
			if err != nil {
				errc <- fmt.Errorf("datagram %d: %v", i, err)
				return
			}
			if got := string(p[:m]); got != strconv.Itoa(i) {
				errc <- fmt.Errorf("datagram %d: got %q", i, got)
				return
			}
			received <- i
		}
		errc <- nil
	}()
	acked := 0
	for i := range n {
		for i-acked >= window {
			select {
			case <-received:
				acked++
			case err := <-errc:
				t.Fatal(err)
			}
		}
		if _, err := src.WriteTo([]byte(strconv.Itoa(i)), dst.LocalAddr()); err != nil {
			t.Fatalf("WriteTo %d: %v", i, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestStreamOf10000KeepsOrder(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			a, b := diffCase{}.listen(t)
			src, dst := k.wrap(a), k.wrap(b)
			defer src.Close()
			defer dst.Close()
			stream(t, src, dst, 10000, 64)
		})
	}
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	const writers, readers, each, window = 4, 4, 500, 100
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			a, b := diffCase{}.listen(t)
			src, dst := k.wrap(a), k.wrap(b)
			defer src.Close()

			// A token per datagram in flight: writers stay at most window
			// datagrams ahead of the readers, so the kernel drops none.
			tokens := make(chan struct{}, window)
			var mu sync.Mutex
			seen := make(map[string]int)
			var rwg sync.WaitGroup
			for range readers {
				rwg.Add(1)
				go func() {
					defer rwg.Done()
					p := make([]byte, 64)
					for {
						n, _, err := dst.ReadFrom(p)
						if err != nil {
							return // closed below
						}
						mu.Lock()
						seen[string(p[:n])]++
						mu.Unlock()
						<-tokens
					}
				}()
			}
			var wwg sync.WaitGroup
			for w := range writers {
				wwg.Add(1)
				go func() {
					defer wwg.Done()
					for i := range each {
						select {
						case tokens <- struct{}{}:
						case <-time.After(5 * time.Second):
							t.Errorf("writer %d stalled at %d: datagrams lost", w, i)
							return
						}
						msg := fmt.Sprintf("%c%d", 'a'+w, i)
						if _, err := src.WriteTo([]byte(msg), dst.LocalAddr()); err != nil {
							t.Errorf("WriteTo: %v", err)
							return
						}
					}
				}()
			}
			wwg.Wait()
			for i := 0; i < 500 && len(tokens) > 0; i++ {
				time.Sleep(10 * time.Millisecond) // the last datagrams in flight
			}
			dst.Close()
			rwg.Wait()
			if len(seen) != writers*each {
				t.Fatalf("received %d distinct datagrams, want %d", len(seen), writers*each)
			}
			for msg, n := range seen {
				if n != 1 {
					t.Fatalf("%q received %d times", msg, n)
				}
			}
		})
	}
}

// A conn served through a net.PacketConn without WriteMsgUDP refuses
// control messages rather than dropping them, and sends a datagram
// without any.
func TestPassThroughWriteMsgRefusesControl(t *testing.T) {
	uc, peer := diffCase{}.listen(t)
	defer peer.Close()
	c := New(struct{ net.PacketConn }{uc}, nil)
	defer c.Close()
	to := peer.LocalAddr().(*net.UDPAddr)
	if _, _, err := c.WriteMsgUDP([]byte("x"), make([]byte, 24), to); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("WriteMsgUDP with control messages = %v, want ErrUnsupported", err)
	}
	if n, oobn, err := c.WriteMsgUDP([]byte("hi"), nil, to); n != 2 || oobn != 0 || err != nil {
		t.Errorf("WriteMsgUDP without = %d %d %v", n, oobn, err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if b := make([]byte, 10); func() bool { n, err := peer.Read(b); return err != nil || string(b[:n]) != "hi" }() {
		t.Error("the datagram without control messages did not arrive")
	}
}
