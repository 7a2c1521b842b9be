package batchconn

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// unreachable is refused by the kernel of a netns: it has no route there.
var unreachable = &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 9}

// refusingPair returns, inside a network namespace of the test's own, a
// batchconn that queues every write and a plain peer.
func refusingPair(t *testing.T) (*PacketConn, *net.UDPConn) {
	ns := newNetns(t)
	plain, uc, peer := ns.listenLoopback(t), ns.listenLoopback(t), ns.listenLoopback(t)
	defer plain.Close()
	if _, err := plain.WriteTo([]byte("x"), unreachable); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("premise: plain WriteTo to %v = %v, want ENETUNREACH", unreachable, err)
	}
	c := newConn(uc, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

func TestFlushReportsRefusedDatagramAndSendsTheRest(t *testing.T) {
	c, peer := refusingPair(t)
	for _, d := range []struct {
		p  string
		to net.Addr
	}{{"a", peer.LocalAddr()}, {"refused", unreachable}, {"b", peer.LocalAddr()}} {
		if _, err := c.WriteTo([]byte(d.p), d.to); err != nil {
			t.Fatalf("WriteTo(%s) = %v; a queued datagram must not fail at once", d.p, err)
		}
	}
	err := c.Flush()
	var oe *net.OpError
	if !errors.Is(err, syscall.ENETUNREACH) || !errors.As(err, &oe) || oe.Op != "write" || oe.Addr.String() != unreachable.String() {
		t.Fatalf("Flush = %v, want a write *net.OpError for %v wrapping ENETUNREACH", err, unreachable)
	}
	if got := readN(t, peer, 2); got[0] != "a" || got[1] != "b" {
		t.Fatalf("peer got %q, want [a b]", got)
	}
	if s := c.Stats(); s.WriteFailures != 1 || s.DatagramsWritten != 2 {
		t.Fatalf("Stats = %+v, want 1 failure and 2 written", s)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("second Flush = %v, want nil: a failure is reported once", err)
	}
}

func TestCloseReportsRefusedDatagram(t *testing.T) {
	c, peer := refusingPair(t)
	c.WriteTo([]byte("refused"), unreachable)
	c.WriteTo([]byte("a"), peer.LocalAddr())
	if err := c.Close(); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("Close = %v, want ENETUNREACH for the refused datagram", err)
	}
	if got := readN(t, peer, 1); got[0] != "a" {
		t.Fatalf("peer got %q, want [a]", got)
	}
}

// Bad datagrams inside a batch: one whose route MTU is too small for a
// datagram that must not fragment (EMSGSIZE), one an nftables rule drops
// on output (EPERM).

var (
	mtuDst = &net.UDPAddr{IP: net.IPv4(198, 18, 0, 3).To4(), Port: 9}
	nftDst = &net.UDPAddr{IP: net.IPv4(198, 18, 0, 4).To4(), Port: 9}
)

// setupBadDestinations gives a a route with MTU 1280 to mtuDst and an
// nftables rule that drops what it sends to nftDst.
func setupBadDestinations(t *testing.T, v *vethPair) {
	t.Helper()
	v.a.ip(t, "route", "add", mtuDst.IP.String()+"/32", "dev", "va", "mtu", "1280")
	v.a.nft(t, `table ip bctest {
	chain output {
		type filter hook output priority 0; policy accept;
		ip daddr `+nftDst.IP.String()+` drop
	}
}
`)
}

// listenDF opens a socket in a that never fragments (IP_PMTUDISC_DO).
func listenDF(t *testing.T, v *vethPair) *net.UDPConn {
	uc := v.a.listen(t, "udp4", "198.18.0.1:0")
	setsockoptInt(t, uc, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	return uc
}

type planned struct {
	dst   net.Addr
	size  int
	errno syscall.Errno // what the kernel refuses it with; 0 for a good one
}

func TestBadDatagramsInsideBatch(t *testing.T) {
	v := newVethPair(t)
	setupBadDestinations(t, v)

	// The plan: good datagrams to the receiver, with bad ones among them,
	// alone and in runs, first, last and in the middle.
	rxAddr := &net.UDPAddr{IP: v.bIP, Port: 0} // port set per run
	g := func(size int) planned { return planned{rxAddr, size, 0} }
	M := planned{mtuDst, 1400, syscall.EMSGSIZE}
	N := planned{nftDst, 1400, syscall.EPERM}
	n := planned{nftDst, 100, syscall.EPERM}
	plan := []planned{M, g(1400), g(1400), g(1400), M, g(1400), g(1400), N, g(1400), g(600), g(1400),
		M, M, g(1400), g(1400), n, g(100), g(100), N, M, g(1400), g(1400), g(1400), g(1400), n}

	// The premise, on plain: each bad datagram is refused at once.
	plain := listenDF(t, v)
	plainErr := map[planned]string{}
	for _, d := range []planned{M, N, n} {
		_, err := plain.WriteTo(make([]byte, d.size), d.dst)
		if !errors.Is(err, d.errno) {
			t.Fatalf("premise: plain WriteTo(%d bytes, %v) = %v, want %v", d.size, d.dst, err, d.errno)
		}
		plainErr[d] = strings.Replace(describe(err), plain.LocalAddr().String(), "LOCAL", -1)
	}
	if _, err := plain.WriteTo(make([]byte, 1400), &net.UDPAddr{IP: v.bIP, Port: 9}); err != nil {
		t.Fatalf("premise: plain WriteTo(1400 bytes) to the receiver = %v", err)
	}

	for _, c := range []struct {
		name   string
		cfg    Config
		hooks  hooks
		queued bool // every write is queued: no failure can show at once
	}{
		{"queued", Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour}, true},
		{"queued-no-offload", Config{MaxDelay: time.Hour, NoOffload: true}, hooks{idleGap: time.Hour}, true},
		{"queued-batch-of-4", Config{MaxDelay: time.Hour, BatchSize: 4}, hooks{idleGap: time.Hour}, true},
		{"queued-batch-of-4-no-offload", Config{MaxDelay: time.Hour, BatchSize: 4, NoOffload: true}, hooks{idleGap: time.Hour}, true},
		{"default", Config{}, hooks{}, false},
		{"single", Config{}, hooks{noBatch: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rx := v.b.listen(t, "udp4", "198.18.0.2:0")
			rxAddr.Port = rx.LocalAddr().(*net.UDPAddr).Port
			cfg := c.cfg
			conn := newConn(listenDF(t, v), &cfg, c.hooks)
			defer conn.Close()
			local := conn.LocalAddr().String()

			var good [][]byte
			bad, syncFailed := 0, 0
			var firstAsync *planned
			for i, d := range plan {
				p := numbered(i, d.size)
				_, err := conn.WriteTo(p, d.dst)
				switch {
				case d.errno == 0 && err != nil:
					t.Fatalf("WriteTo %d (good) = %v", i, err)
				case d.errno == 0:
					good = append(good, p)
				case err == nil && firstAsync == nil:
					firstAsync = &plan[i]
				case err != nil:
					syncFailed++
					if c.queued {
						t.Fatalf("WriteTo %d = %v: a queued datagram must not fail at once", i, err)
					}
					if got := strings.Replace(describe(err), local, "LOCAL", -1); got != plainErr[d] {
						t.Errorf("WriteTo %d failed at once with\n  %s\nplain:\n  %s", i, got, plainErr[d])
					}
				}
				if d.errno != 0 {
					bad++
				}
			}
			ferr := conn.Flush()
			s := conn.Stats()
			t.Logf("%d bad of %d: %d refused at once, %d at flush; Flush = %v; Stats = %+v",
				bad, len(plan), syncFailed, s.WriteFailures, ferr, s)
			if c.hooks.noBatch {
				if syncFailed != bad {
					t.Errorf("one datagram at a time: %d of %d bad datagrams refused at once", syncFailed, bad)
				}
			} else {
				if syncFailed+int(s.WriteFailures) != bad {
					t.Errorf("%d refused at once + %d WriteFailures, want %d bad datagrams counted", syncFailed, s.WriteFailures, bad)
				}
				if s.DatagramsWritten != uint64(len(good)) {
					t.Errorf("DatagramsWritten = %d, want %d", s.DatagramsWritten, len(good))
				}
			}
			if firstAsync == nil {
				if ferr != nil {
					t.Errorf("Flush = %v, want nil: every failure was reported at once", ferr)
				}
			} else {
				var oe *net.OpError
				if !errors.Is(ferr, firstAsync.errno) || !errors.As(ferr, &oe) || oe.Op != "write" ||
					oe.Addr == nil || oe.Addr.String() != firstAsync.dst.String() {
					t.Errorf("Flush = %v, want a write *net.OpError for %v wrapping %v (the first queued failure)",
						ferr, firstAsync.dst, firstAsync.errno)
				}
			}
			if err := conn.Flush(); err != nil {
				t.Errorf("second Flush = %v, want nil: a failure is reported once", err)
			}
			// Every good datagram arrives, once, in order.
			got := readN(t, rx, len(good))
			for i := range good {
				if got[i] != string(good[i]) {
					t.Fatalf("good datagram %d: got %.10q..., want %.10q...", i, got[i], good[i])
				}
			}
			rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, _, err := rx.ReadFrom(make([]byte, 2000)); err == nil {
				t.Fatalf("an extra %d-byte datagram arrived", n)
			}
		})
	}
}
