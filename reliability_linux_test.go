package batchconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Faults batchconn must survive, each on a network of the test's own
// (network namespaces: see vethns_linux_test.go and netns_linux_test.go),
// and accounting tests that count every datagram against the kernel's own
// counters. They need root; CI runs as root, with iproute2 and nftables.

// ---------------------------------------------------------------------
// A slow path: a veth link limited by tbf. The sender's socket buffer
// fills with datagrams queued in the qdisc.

const slowSize = 1200

func slowPayload(i int) []byte {
	p := make([]byte, slowSize)
	binary.BigEndian.PutUint64(p, uint64(i))
	for j := 8; j < len(p); j++ {
		p[j] = byte(i + j*7)
	}
	return p
}

func parseSlowPayload(p []byte) (int, bool) {
	if len(p) != slowSize {
		return 0, false
	}
	i := int(binary.BigEndian.Uint64(p))
	for j := 8; j < len(p); j++ {
		if p[j] != byte(i+j*7) {
			return i, false
		}
	}
	return i, true
}

// A slowReceiver records the slow payloads a socket receives, in order.
type slowReceiver struct {
	rx   *net.UDPConn
	done chan struct{} // closed when the reading goroutine has returned

	mu       sync.Mutex // guards received and corrupt
	received []int
	corrupt  int
}

// receiveSlow starts reading rx until stop.
func receiveSlow(rx *net.UDPConn) *slowReceiver {
	r := &slowReceiver{rx: rx, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		p := make([]byte, 2*slowSize)
		for {
			n, _, err := rx.ReadFrom(p)
			if err != nil {
				return // closed by stop
			}
			i, ok := parseSlowPayload(p[:n])
			r.mu.Lock()
			r.received = append(r.received, i)
			if !ok {
				r.corrupt++
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// count is how many datagrams have arrived so far.
func (r *slowReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.received)
}

// stop closes the socket and returns what arrived, and how much of it
// was corrupt.
func (r *slowReceiver) stop() (received []int, corrupt int) {
	r.rx.Close()
	<-r.done
	return r.received, r.corrupt
}

// slowPath runs the slow-path scenario for one kind and returns what a
// caller observes, for comparison with plain.
func slowPath(t *testing.T, v *vethPair, k kind) (log []string) {
	rx := v.b.listen(t, "udp4", "198.18.0.2:0")
	// Room for seconds of the link's traffic: a reader the machine's
	// load holds back must not make the receiver drop.
	setsockoptInt(t, rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	uc := v.a.listen(t, "udp4", "198.18.0.1:0")
	conn := k.wrap(uc)
	defer conn.Close()
	// A small send buffer: the bytes the qdisc holds fill it, and the
	// socket stops being writable.
	if err := conn.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	dst := rx.LocalAddr()
	rep := strings.NewReplacer(
		":"+strconv.Itoa(uc.LocalAddr().(*net.UDPAddr).Port), ":LOCALPORT",
		":"+strconv.Itoa(rx.LocalAddr().(*net.UDPAddr).Port), ":PEERPORT")
	logf := func(format string, args ...any) { log = append(log, rep.Replace(fmt.Sprintf(format, args...))) }
	flush := func(when string) {
		if f, ok := conn.(interface{ Flush() error }); ok {
			if err := f.Flush(); err != nil {
				t.Errorf("Flush %s = %v, want nil", when, err)
			}
		}
	}

	recv := receiveSlow(rx)

	var accepted []int // datagrams WriteTo accepted (nil error), in order
	next := 0
	write := func() (int, error) {
		i := next
		next++
		p := slowPayload(i)
		n, err := conn.WriteTo(p, dst)
		if err == nil {
			if n != len(p) {
				t.Errorf("WriteTo = %d, nil; want %d", n, len(p))
			}
			accepted = append(accepted, i)
		}
		return n, err
	}

	// 1. A write deadline fires on a writer the link holds back.
	conn.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	var n int
	var err error
	for range 100000 {
		if n, err = write(); err != nil {
			break
		}
	}
	logf("WriteTo in a loop with a deadline 300ms ahead fails with = %d %s", n, describe(err))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the writer ended with %v, want the deadline", err)
	}
	phase1 := len(accepted)
	conn.SetWriteDeadline(time.Time{})
	flush("after the deadline was cleared")

	// 2. SetWriteDeadline(past) from another goroutine wakes a WriteTo
	// blocked on the full socket buffer, as pion/ice relies on. The link
	// slows to 64 kbit/s, a datagram every 150ms: a writer waits long
	// enough in WriteTo to be seen waiting.
	setSlowRate(t, v, "64kbit")
	var progress atomic.Int64
	var inWrite atomic.Bool
	result := make(chan string, 1)
	go func() {
		for range 100000 {
			inWrite.Store(true)
			n, err := write()
			inWrite.Store(false)
			if err != nil {
				result <- fmt.Sprintf("= %d %s", n, describe(err))
				return
			}
			progress.Add(1)
		}
		result <- "never blocked"
	}()
	// Blocked: inside WriteTo, without progress, three looks in a row.
	last, stalls := int64(-1), 0
	for i := 0; i < 1000 && stalls < 3; i++ {
		time.Sleep(10 * time.Millisecond)
		p := progress.Load()
		if p == last && inWrite.Load() {
			stalls++
		} else {
			stalls = 0
		}
		last = p
	}
	if stalls < 3 {
		t.Errorf("the writer never blocked on a %d-byte send buffer over a 64 kbit/s link: datagrams dropped?", 4096)
	}
	conn.SetWriteDeadline(time.Now().Add(-time.Second))
	select {
	case r := <-result:
		logf("SetWriteDeadline(past) from another goroutine ends the blocked WriteTo %s", r)
	case <-time.After(10 * time.Second):
		conn.Close()
		<-result
		t.Fatalf("%s: SetWriteDeadline(past) did not wake a WriteTo blocked for 10s", k.name)
	}
	setSlowRate(t, v, slowRate)
	phase2 := len(accepted) - phase1
	conn.SetWriteDeadline(time.Time{})
	flush("after the blocked WriteTo was woken")

	// 3. Without a deadline every datagram is accepted: the writer
	// blocks until there is room.
	for i := range 200 {
		if _, err := write(); err != nil {
			t.Fatalf("WriteTo %d without a deadline = %v", i, err)
		}
	}
	logf("200 more WriteTo without a deadline: all accepted")
	logf("Close = %s", describe(conn.Close()))
	if c, ok := conn.(*PacketConn); ok && c.bio != nil {
		// Near the deadline a write may go through plain (batchconn's
		// clock and the poller's disagree by a moment): counted too.
		if s := c.Stats(); s.DatagramsWritten != uint64(len(accepted)) || s.WriteFailures != 0 {
			t.Errorf("Stats = %+v; want %d written (every accepted datagram) and no failure", s, len(accepted))
		}
	}

	// Every accepted datagram arrives, in order; the link drains at
	// 1 MB/s.
	for i := 0; i < 1000; i++ {
		if recv.count() >= len(accepted) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything beyond them
	received, corrupt := recv.stop()
	t.Logf("%s: accepted %d with the deadline, %d before the interrupt, 200 after; received %d",
		k.name, phase1, phase2, len(received))
	if corrupt > 0 {
		t.Errorf("%d datagrams arrived corrupt", corrupt)
	}
	if slices.Equal(received, accepted) {
		logf("the receiver got every accepted datagram, once, in order")
	} else {
		logf("the receiver got %s", seqDiff(accepted, received))
		t.Errorf("%s: received %d datagrams, accepted %d: %s", k.name, len(received), len(accepted), seqDiff(accepted, received))
	}
	return log
}

// slowRate is the slow path's rate; a limit far above what a 4 KiB send
// buffer lets in makes the qdisc queue, never drop.
const slowRate = "8mbit"

// setSlowRate sets the rate of the tbf qdisc on a's side of the link;
// datagrams it holds stay queued.
func setSlowRate(t *testing.T, v *vethPair, rate string) {
	t.Helper()
	v.a.tc(t, "qdisc", "replace", "dev", "va", "root", "tbf", "rate", rate, "burst", "16kb", "limit", "8mb")
}

// seqDiff describes how got differs from want.
func seqDiff(want, got []int) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("datagram %d where %d was due (position %d)", got[i], want[i], i)
		}
	}
	if len(got) < len(want) {
		return fmt.Sprintf("%d missing from %d on", len(want)-len(got), want[len(got)])
	}
	if len(got) > len(want) {
		return fmt.Sprintf("%d more than accepted", len(got)-len(want))
	}
	return "the same"
}

func TestSlowPathBlocksInsteadOfDropping(t *testing.T) {
	v := newVethPair(t)
	setSlowRate(t, v, slowRate)
	aBefore, bBefore := v.a.snmp(t), v.b.snmp(t)
	var want []string
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			got := slowPath(t, v, k)
			if k.name == "plain" {
				want = got
				return
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s differs from plain:\n%s", k.name, lineDiff(want, got))
			}
		})
	}
	qdisc := v.a.tc(t, "-s", "qdisc", "show", "dev", "va")
	if m := regexp.MustCompile(`dropped (\d+)`).FindStringSubmatch(qdisc); m == nil || m[1] != "0" {
		t.Errorf("the qdisc dropped datagrams (the test needs a limit it never reaches):\n%s", qdisc)
	}
	a, b := v.a.snmp(t).sub(aBefore), v.b.snmp(t).sub(bBefore)
	// (SndbufErrors counts each time the sender found its buffer full:
	// the EAGAIN that made it wait, not a drop.)
	if b.udp["InErrors"] != 0 || a.devDrop != 0 || b.devDrop != 0 {
		t.Errorf("the kernel dropped datagrams: sender %v; receiver %v", a, b)
	}
	t.Logf("sender: %v\nreceiver: %v\n%s", a, b, qdisc)
}

// Close from another goroutine wakes a WriteTo blocked on a full socket
// buffer, with plain's net.ErrClosed, and returns at once, as plain's
// Close does. On batchconn, datagrams the queue held and could not send
// are then reported by Close (a *net.OpError wrapping net.ErrClosed) and
// counted in Stats.WriteFailures.
func TestCloseWakesWriterBlockedOnSlowPath(t *testing.T) {
	v := newVethPair(t)
	setSlowRate(t, v, "64kbit") // a datagram every 150ms
	var want []string
	for _, k := range kinds {
		rx := v.b.listen(t, "udp4", "198.18.0.2:0")
		uc := v.a.listen(t, "udp4", "198.18.0.1:0")
		conn := k.wrap(uc)
		conn.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(4096)
		var progress atomic.Int64
		var inWrite atomic.Bool
		result := make(chan error, 1)
		go func() {
			p := make([]byte, slowSize)
			for range 100000 {
				inWrite.Store(true)
				_, err := conn.WriteTo(p, rx.LocalAddr())
				inWrite.Store(false)
				if err != nil {
					result <- err
					return
				}
				progress.Add(1)
			}
			result <- nil
		}()
		last, stalls := int64(-1), 0
		for i := 0; i < 1000 && stalls < 3; i++ {
			time.Sleep(10 * time.Millisecond)
			p := progress.Load()
			if p == last && inWrite.Load() {
				stalls++
			} else {
				stalls = 0
			}
			last = p
		}
		if stalls < 3 {
			t.Errorf("%s: the writer never blocked on a 64 kbit/s link", k.name)
		}
		closed := make(chan error, 1)
		go func() { closed <- conn.Close() }()
		var log []string
		// Plain's Close returns at once. A Close that waits for the link
		// to drain takes minutes: after 10s it is released, and fails.
		var cerr error
		select {
		case cerr = <-closed:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Close still blocked after 10s, waiting for the blocked WriteTo", k.name)
			conn.SetWriteDeadline(time.Now().Add(-time.Second))
			cerr = <-closed
		}
		werr := <-result
		rep := strings.NewReplacer(uc.LocalAddr().String(), "LOCAL", rx.LocalAddr().String(), "PEER")
		log = append(log, rep.Replace("the blocked WriteTo = "+describe(werr)))
		rx.Close()
		// Close's own outcome: nil, or (batchconn) the queued datagrams
		// it could not send, counted.
		var oe *net.OpError
		var failures uint64
		if c, ok := conn.(*PacketConn); ok {
			failures = c.Stats().WriteFailures
		}
		switch {
		case cerr == nil && failures == 0:
		case cerr != nil && errors.As(cerr, &oe) && oe.Op == "write" && errors.Is(cerr, net.ErrClosed) && failures > 0:
			t.Logf("%s: Close = %v, reporting %d queued datagrams it could not send", k.name, cerr, failures)
		default:
			t.Errorf("%s: Close = %s with %d WriteFailures; want nil, or a write *net.OpError wrapping net.ErrClosed "+
				"for the queued datagrams it could not send, counted", k.name, describe(cerr), failures)
		}
		if k.name == "plain" {
			want = log
			continue
		}
		if strings.Join(log, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s differs from plain:\n%s", k.name, lineDiff(want, log))
		}
	}
}

// Close called when no caller is in any method, while the MaxDelay timer
// waits for room to send the queue, sends the queue and returns nil, as
// Close's documentation says: every datagram WriteTo accepted arrives.
// This is the state TestSlowPathBlocksInsteadOfDropping's final Close
// meets now and then under load (the timer, not Close, took the lock
// after the last WriteTo), made certain: the test waits until it holds.
func TestCloseSendsTheQueueTheTimerWaitsToSend(t *testing.T) {
	v := newVethPair(t)
	setSlowRate(t, v, "256kbit") // a datagram every 37.5ms, after the 16 kB burst
	rx := v.b.listen(t, "udp4", "198.18.0.2:0")
	setsockoptInt(t, rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	uc := v.a.listen(t, "udp4", "198.18.0.1:0")
	// Every write queued; one datagram a message, so that the socket
	// buffer fills a datagram at a time.
	c := newConn(uc, &Config{NoOffload: true}, hooks{idleGap: time.Hour})
	if c.bio == nil {
		t.Skip("no batch I/O here")
	}
	defer c.Close()
	if err := c.SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	recv := receiveSlow(rx)

	// More than the burst and the socket buffer let through at once, and
	// then enough queued that the next send must wait for the link; once
	// a send waits while this goroutine is in no method, it is the
	// timer's.
	var accepted []int
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; {
		if i >= 40 && c.bio.writeWaiting() && c.w.queued.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer never waited for room (%d written, %d queued)", i, c.w.queued.Load())
		}
		if i < 40 || c.w.queued.Load() < 8 {
			if _, err := c.WriteTo(slowPayload(i), rx.LocalAddr()); err != nil {
				t.Fatalf("WriteTo %d = %v", i, err)
			}
			accepted = append(accepted, i)
			i++
			continue
		}
		time.Sleep(time.Millisecond)
	}
	queued := c.w.queued.Load()
	if err := c.Close(); err != nil {
		t.Errorf("Close with %d datagrams queued behind the timer's send = %v, want nil", queued, err)
	}
	if s := c.Stats(); s.WriteFailures != 0 || s.DatagramsWritten != uint64(len(accepted)) {
		t.Errorf("Stats = %+v; want %d written, none failed", s, len(accepted))
	}
	// What Close sent is in the qdisc, at most a socket buffer's worth.
	for end := time.Now().Add(3 * time.Second); recv.count() < len(accepted) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything beyond them
	if received, corrupt := recv.stop(); corrupt > 0 || !slices.Equal(received, accepted) {
		t.Errorf("%d arrived corrupt; accepted %d datagrams (%d queued at Close); the receiver got %s",
			corrupt, len(accepted), queued, seqDiff(accepted, received))
	}
}

// ---------------------------------------------------------------------
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

// ---------------------------------------------------------------------
// Errors the kernel reports on reads: ICMP errors a peer's firewall
// answers with, on connected sockets and on unconnected ones that asked
// for them (IP_RECVERR).

func TestReadReportsICMPErrorsAsPlain(t *testing.T) {
	v := newVethPair(t)
	// The receiving side answers with as many ICMP errors as asked.
	if err := v.b.inNetns(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/icmp_ratemask", []byte("0"), 0)
	}); err != nil {
		t.Fatalf("lifting the ICMP rate limit in the namespace: %v", err)
	}
	for _, c := range []struct {
		reject  string // nft: reject with icmp type ...
		mode    string // connected, unconnected, recverr (unconnected with IP_RECVERR)
		errno   syscall.Errno
		reports bool
	}{
		{"port-unreachable", "connected", syscall.ECONNREFUSED, true},
		{"prot-unreachable", "connected", syscall.ENOPROTOOPT, true},
		{"admin-prohibited", "connected", syscall.EHOSTUNREACH, true},
		{"net-prohibited", "connected", syscall.ENETUNREACH, true},
		// Not a hard error: the kernel keeps it from a socket without IP_RECVERR.
		{"host-unreachable", "connected", 0, false},
		// An unconnected socket hears no ICMP error ...
		{"port-unreachable", "unconnected", 0, false},
		// ... unless it asks for them.
		{"port-unreachable", "recverr", syscall.ECONNREFUSED, true},
		{"host-unreachable", "recverr", syscall.EHOSTUNREACH, true},
		{"admin-prohibited", "recverr", syscall.EHOSTUNREACH, true},
	} {
		t.Run(c.reject+"/"+c.mode, func(t *testing.T) {
			// One-byte payloads (UDP length 9) from a are refused.
			v.b.nft(t, `table ip bctest
delete table ip bctest
table ip bctest {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr `+v.aIP.String()+` udp length 9 reject with icmp type `+c.reject+`
	}
}
`)
			wait := 200 * time.Millisecond // for an error that must not come
			if c.reports {
				wait = 5 * time.Second
			}
			var want []string
			for _, k := range kinds {
				peer := v.b.listen(t, "udp4", "198.18.0.2:0")
				uc := v.a.listen(t, "udp4", "198.18.0.1:0")
				if c.mode == "connected" {
					uc.Close()
					var err error
					if err = v.a.inNetns(func() error {
						uc, err = net.DialUDP("udp4", &net.UDPAddr{IP: v.aIP}, peer.LocalAddr().(*net.UDPAddr))
						return err
					}); err != nil {
						t.Fatal(err)
					}
				}
				if c.mode == "recverr" {
					setsockoptInt(t, uc, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
				}
				got := runKindOn(t, uc, peer, k, k.name, func(e *env) {
					write, read := func(p []byte) { e.write(p, e.peerAddr()) }, e.read
					if c.mode == "connected" {
						write, read = e.connWrite, e.connRead
					}
					write([]byte("x"))
					e.conn.SetReadDeadline(time.Now().Add(wait))
					read(64)
					e.conn.SetReadDeadline(time.Time{})
					write([]byte("works again"))
					e.peerRead()
					e.peerSend([]byte("reply"))
					read(64)
				})
				peer.Close()
				if k.name == "plain" {
					want = got
					line := want[1]
					if c.reports != strings.Contains(line, "errno="+c.errno.Error()) || !c.reports && !strings.Contains(line, "deadline=true") {
						t.Fatalf("premise: plain's read after a rejected datagram: %s; want errno %v (%v)", line, c.errno, c.reports)
					}
					continue
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s differs from plain:\n%s", k.name, lineDiff(want, got))
				}
			}
			if testing.Verbose() {
				t.Logf("observed:\n  %s", strings.Join(want, "\n  "))
			}
		})
	}
}

// A pending socket error comes before the datagrams the kernel holds:
// plain's next read returns it. Datagrams batchconn already took into its
// ring are not the kernel's any more: they come first, then the error,
// once, and nothing is lost.
func TestPendingErrorWithDatagramsInRing(t *testing.T) {
	c := diffCase{name: "PendingErrorWithDatagramsInRing", dial: true, run: func(e *env) {
		// Bursts first: batchconn's ring grows while the kernel fills it.
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		p := make([]byte, 64)
		for range 4 {
			for i := range 16 {
				e.peerSend([]byte{byte(i)})
			}
			for range 16 {
				if _, _, err := e.conn.ReadFrom(p); err != nil {
					e.t.Fatal(err)
				}
			}
		}
		if c, ok := e.conn.(*PacketConn); ok && c.bio != nil && c.r.want < 2 {
			e.t.Fatalf("premise: the ring offers %d slots after bursts, want at least 2", c.r.want)
		}
		for _, s := range []string{"a", "b", "c"} {
			e.peerSend([]byte(s))
		}
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		e.connRead(64) // a; batchconn's ring now holds b and c
		e.peer.Close() // nobody listens: the next datagram is refused
		e.connWrite([]byte("to nobody"))
		for range 3 {
			e.connRead(64)
		}
		e.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		e.connRead(64)
	}}
	names, logs := diffLogs(t, c, kinds)
	var divergent []string
	for i, log := range logs {
		// What must hold on every kind: a, b, c in order, the refusal
		// once, then nothing.
		var data []string
		refused := 0
		for _, line := range log {
			if strings.Contains(line, "connection refused") {
				refused++
			}
			if m := regexp.MustCompile(`^Read\(64\) = 1 "(.)"`).FindStringSubmatch(line); m != nil {
				data = append(data, m[1])
			}
		}
		if strings.Join(data, "") != "abc" || refused != 1 || !strings.Contains(log[len(log)-1], "deadline=true") {
			t.Errorf("%s: read %q and %d refusals, want abc and one refusal, then nothing:\n  %s",
				names[i], data, refused, strings.Join(log, "\n  "))
			continue
		}
		if i > 0 && strings.Join(log, "\n") != strings.Join(logs[0], "\n") {
			divergent = append(divergent, fmt.Sprintf("%s differs from plain:\n%s", names[i], lineDiff(logs[0], log)))
		}
	}
	// Where batchconn's ring held b and c when the refusal arrived, it
	// returns them first (documented in the package's Errors section);
	// what must hold on every kind was checked above.
	if len(divergent) > 0 && testing.Verbose() {
		t.Logf("taken into the ring before the error arrived, as documented:\n%s", strings.Join(divergent, "\n"))
	}
}

// ---------------------------------------------------------------------
// A flood of maximum-size datagrams: memory stays within what the docs
// say one conn holds (BatchSize × ReadSlotSize for the ring, QueueBytes
// for the queue) and the read pool keeps, and no goroutine is left.

type memFigures struct{ heapInuse, sys uint64 }

func memNow(gc bool) memFigures {
	if gc {
		heapInUse()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{m.HeapInuse, m.Sys}
}

const mib = 1 << 20

func TestFloodOfMaxSizeDatagramsStaysWithinBound(t *testing.T) {
	ns := newLoopbackNetns(t)
	peer, uc := ns.listenLoopback(t), ns.listenLoopback(t)
	defer peer.Close()
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	g0 := runtime.NumGoroutine()
	before := memNow(true)
	k0 := ns.snmp(t)
	c := New(uc, nil)
	requireBatching(t, c)
	// The conn's ring while it holds datagrams and its queue (doc.go,
	// Memory), and one more ring's block: the reader, which goes on while
	// memNow empties the read pool, may give one back before the heap is
	// read.
	bound := uint64(2*c.cfg.BatchSize*c.cfg.ReadSlotSize + c.cfg.QueueBytes)

	var sent, read, echoed, bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the peer floods
		defer wg.Done()
		p := seq(maxPayload4)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := peer.WriteTo(p, c.LocalAddr()); err == nil {
				sent.Add(1)
			}
		}
	}()
	go func() { // the conn reads, and echoes one in four at full size
		defer wg.Done()
		p := make([]byte, maxDatagram)
		want := seq(maxPayload4)
		for {
			n, from, err := c.ReadFrom(p)
			if err != nil {
				return
			}
			if n != maxPayload4 || p[0] != want[0] || p[n/2] != want[n/2] || p[n-1] != want[n-1] {
				bad.Add(1)
			}
			if read.Add(1)%4 == 0 {
				if _, err := c.WriteTo(p[:n], from); err == nil {
					echoed.Add(1)
				}
			}
		}
	}()

	var peak memFigures
	maxG := 0
	var mid memFigures
	start := time.Now()
	for i := 0; time.Since(start) < dur && i < 1000; i++ {
		time.Sleep(50 * time.Millisecond)
		m := memNow(false)
		peak.heapInuse, peak.sys = max(peak.heapInuse, m.heapInuse), max(peak.sys, m.sys)
		maxG = max(maxG, runtime.NumGoroutine())
		if mid == (memFigures{}) && time.Since(start) > dur/3 {
			mid = memNow(true)
		}
	}
	end := memNow(true) // the conn is open: it holds its ring and queue
	close(stop)
	c.Close()
	peer.Close()
	wg.Wait()
	slots := c.r.want     // the reader is gone
	after := memNow(true) // the conn is no longer used: what is left is a leak
	g1 := runtime.NumGoroutine()
	for i := 0; i < 500 && g1 > g0; i++ {
		time.Sleep(10 * time.Millisecond)
		g1 = runtime.NumGoroutine()
	}
	k := ns.snmp(t).sub(k0)

	t.Logf("flood of %d-byte datagrams for %v: sent %d, read %d (%d MB), echoed %d; kernel: %v",
		maxPayload4, dur, sent.Load(), read.Load(), read.Load()*maxPayload4/mib, echoed.Load(), k)
	t.Logf("documented bound %.2f MiB; heap in use: before %.2f MiB, a third in %.2f, at the end %.2f, peak %.2f, after Close %.2f; "+
		"Sys: before %.2f, a third in %.2f, at the end %.2f, peak %.2f; goroutines: before %d, at most %d, after %d",
		mb(bound), mb(before.heapInuse), mb(mid.heapInuse), mb(end.heapInuse), mb(peak.heapInuse), mb(after.heapInuse),
		mb(before.sys), mb(mid.sys), mb(end.sys), mb(peak.sys), g0, maxG, g1)

	if read.Load() == 0 || bad.Load() > 0 {
		t.Fatalf("read %d datagrams, %d of them wrong", read.Load(), bad.Load())
	}
	// What the conn holds live is its ring, which grows with the load up
	// to BatchSize slots, and its queue: a third in and at the end alike.
	for _, m := range []struct {
		when string
		at   memFigures
	}{{"a third in", mid}, {"at the end", end}} {
		if grow := int64(m.at.heapInuse) - int64(before.heapInuse); grow > int64(bound)+2*mib {
			t.Errorf("live heap %.2f MiB above the start %s, with the conn open; the docs bound what it holds at %.2f MiB",
				mb(uint64(grow)), m.when, mb(bound))
		}
	}
	if slots > defaultBatchSize {
		t.Errorf("the ring has %d slots, more than BatchSize %d", slots, defaultBatchSize)
	}
	// Garbage (one address per ReadFrom) at most doubles the heap
	// before a collection (GOGC=100).
	if grow := int64(peak.heapInuse) - int64(before.heapInuse); grow > 2*int64(bound)+16*mib {
		t.Errorf("heap in use peaked %.2f MiB above the start", mb(uint64(grow)))
	}
	if grow := int64(end.sys) - int64(before.sys); grow > 2*int64(bound)+32*mib {
		t.Errorf("memory from the OS grew %.2f MiB", mb(uint64(grow)))
	}
	if maxG > g0+4 {
		t.Errorf("%d goroutines during the flood, %d before: the conn may start two (its timer, and the process's watcher of timers, timeridle.go), the test two", maxG, g0)
	}
	if g1 > g0 {
		t.Errorf("%d goroutines after Close, %d before", g1, g0)
	}
	if grow := int64(after.heapInuse) - int64(before.heapInuse); grow > 2*mib {
		t.Errorf("heap in use %.2f MiB above the start after Close", mb(uint64(grow)))
	}
}

func mb(n uint64) float64 { return float64(n) / mib }

// ---------------------------------------------------------------------
// Accounting: every datagram is delivered, or counted by the kernel as
// dropped. In a namespace of the test's own, only the test's datagrams
// move the counters.

// accountingPayload is datagram i of sender s, size bytes that say so.
func accountingPayload(s, i, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, uint32(s))
	binary.BigEndian.PutUint32(p[4:], uint32(i))
	for j := 8; j < size; j++ {
		p[j] = byte(s*31 + i + j)
	}
	return p
}

// orderCheck follows the datagrams of several senders: each one's must
// come in order, with gaps only (drops), never twice or backwards.
type orderCheck struct {
	mu   sync.Mutex
	next []int
	n    int64
	errs []string
}

func newOrderCheck(senders int) *orderCheck { return &orderCheck{next: make([]int, senders)} }

func (o *orderCheck) see(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	if len(p) < 8 {
		o.errs = append(o.errs, fmt.Sprintf("a %d-byte datagram", len(p)))
		return
	}
	s, i := int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
	switch {
	case s >= len(o.next):
		o.errs = append(o.errs, fmt.Sprintf("sender %d unknown", s))
	case i < o.next[s]:
		o.errs = append(o.errs, fmt.Sprintf("sender %d: datagram %d after %d (duplicate or reordered)", s, i, o.next[s]-1))
	case string(p) != string(accountingPayload(s, i, len(p))):
		o.errs = append(o.errs, fmt.Sprintf("sender %d: datagram %d corrupt", s, i))
	default:
		o.next[s] = i + 1
	}
}

func (o *orderCheck) count() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

func (o *orderCheck) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range o.errs {
		if i == 10 {
			t.Errorf("... and %d more", len(o.errs)-10)
			break
		}
		t.Error(e)
	}
}

// settle waits until delivered plus the kernel's drops account for n
// datagrams, or stop changing: delivery on loopback may finish in softirq
// context after the send returns. It returns the counters' growth since
// before.
func settle(t *testing.T, ns *namedNetns, before kernelCounters, n int64, delivered func() int64) (kernelCounters, int64) {
	t.Helper()
	var k kernelCounters
	var got, last int64 = 0, -1
	for i, still := 0, 0; i < 1000 && still < 20; i++ {
		k = ns.snmp(t).sub(before)
		got = delivered()
		sum := got + k.udp["InErrors"] + k.devDrop
		if sum >= n {
			break
		}
		if sum == last {
			still++
		} else {
			still = 0
		}
		last = sum
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything beyond n shows now
	return ns.snmp(t).sub(before), delivered()
}

func TestAccountingWrittenDatagrams(t *testing.T) {
	t.Run("NoOffload", func(t *testing.T) { accountWrites(t, false) })
	t.Run("Offload", func(t *testing.T) { accountWrites(t, true) })
}

// accountWrites writes through batchconn to a plain reader that cannot
// keep up. Without offload every packet is one datagram, and delivered
// plus the kernel's drops is exactly what was written. With offload
// (GSO) a packet the device drops before the socket cuts it up may carry
// several datagrams, and the device counts one drop.
func accountWrites(t *testing.T, offload bool) {
	ns := newLoopbackNetns(t)
	rx := ns.listenLoopback(t)
	defer rx.Close()
	// A small receive buffer and a reader that cannot keep up with two
	// writers: the kernel drops, and counts.
	if err := rx.SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	const writers = 2
	each := 10000
	if testing.Short() {
		each = 2000
	}
	n := int64(writers * each)
	before := ns.snmp(t)
	c := New(ns.listenLoopback(t), &Config{NoOffload: !offload})
	requireBatching(t, c)

	order := newOrderCheck(writers)
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		p := make([]byte, 2000)
		for {
			m, _, err := rx.ReadFrom(p)
			if err != nil {
				return
			}
			order.see(p[:m])
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Runs of equal sizes (GSO) broken by other sizes.
				size := 100 + 1300*((i/7)%2) + i%3
				if _, err := c.WriteTo(accountingPayload(w, i, size), rx.LocalAddr()); err != nil {
					t.Errorf("writer %d: WriteTo %d = %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	k, delivered := settle(t, ns, before, n, order.count)
	rx.Close()
	<-rdone
	order.check(t)
	s := c.Stats()
	drops := k.udp["InErrors"] + k.devDrop
	t.Logf("offload %v: written %d through batchconn: delivered %d + kernel drops %d (InErrors %d, of which RcvbufErrors %d; device drops %d) = %d; "+
		"Stats: DatagramsWritten %d in %d calls, OffloadSent %d, WriteFailures %d; kernel %v",
		offload, n, delivered, drops, k.udp["InErrors"], k.udp["RcvbufErrors"], k.devDrop, delivered+drops,
		s.DatagramsWritten, s.WriteCalls, s.OffloadSent, s.WriteFailures, k)
	switch {
	case delivered+drops == n:
	case offload && delivered+drops < n && delivered+k.udp["InErrors"]+gsoMaxSegsProbe*k.devDrop >= n:
		t.Logf("the device dropped %d packets, GSO packets among them: %d datagrams in them beyond one each",
			k.devDrop, n-delivered-drops)
	default:
		t.Errorf("delivered %d + dropped %d = %d, want %d: datagrams unaccounted for", delivered, drops, delivered+drops, n)
	}
	if k.udp["InDatagrams"] != delivered {
		t.Errorf("the kernel counts %d datagrams received by sockets, the reader %d", k.udp["InDatagrams"], delivered)
	}
	if s.DatagramsWritten != uint64(n) || s.WriteFailures != 0 {
		t.Errorf("Stats = %+v, want %d written and no failure", s, n)
	}
}

func TestAccountingReadDatagrams(t *testing.T) {
	t.Run("ReadAll", func(t *testing.T) { accountReads(t, false) })
	t.Run("CloseWithDatagramsBuffered", func(t *testing.T) { accountReads(t, true) })
}

// accountReads sends from plain senders to a batchconn reader. Every
// datagram the kernel delivered to the socket is returned by ReadFrom;
// or, when the reader stops early, is in the ring (discarded at Close,
// as the docs say) or still in the kernel's buffer.
func accountReads(t *testing.T, stopEarly bool) {
	ns := newLoopbackNetns(t)
	uc := ns.listenLoopback(t)
	if err := uc.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	c := New(uc, &Config{BatchSize: 32})
	defer c.Close()
	requireBatching(t, c)
	const senders, size = 2, 500
	each := 10000
	if testing.Short() {
		each = 2000
	}
	n := int64(senders * each)
	var peers []*net.UDPConn
	for range senders {
		p := ns.listenLoopback(t)
		defer p.Close()
		peers = append(peers, p)
	}
	before := ns.snmp(t)

	order := newOrderCheck(senders)
	var returned atomic.Int64
	stop := make(chan struct{})
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		p := make([]byte, 2000)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, _, err := c.ReadFrom(p)
			if err != nil {
				return
			}
			order.see(p[:m])
			returned.Add(1)
		}
	}()
	var wg sync.WaitGroup
	for s, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := p.WriteTo(accountingPayload(s, i, size), c.LocalAddr()); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
				if stopEarly && s == 0 && i == each/2 {
					close(stop) // the reader stops after its current read
				}
			}
		}()
	}
	wg.Wait()
	if !stopEarly {
		k, got := settle(t, ns, before, n, returned.Load)
		c.SetReadDeadline(time.Now().Add(-time.Second)) // wakes the reader
		<-rdone
		order.check(t)
		s := c.Stats()
		drops := k.udp["InErrors"] + k.devDrop
		t.Logf("sent %d to batchconn: ReadFrom returned %d + kernel drops %d (InErrors %d, RcvbufErrors %d; device drops %d) = %d; "+
			"Stats: DatagramsRead %d in %d calls; kernel %v", n, got, drops, k.udp["InErrors"], k.udp["RcvbufErrors"], k.devDrop, got+drops,
			s.DatagramsRead, s.ReadCalls, k)
		if got+drops != n {
			t.Errorf("returned %d + dropped %d = %d, want %d", got, drops, got+drops, n)
		}
		if s.DatagramsRead != uint64(got) || k.udp["InDatagrams"] != got {
			t.Errorf("Stats.DatagramsRead %d, kernel InDatagrams %d: want both %d, what ReadFrom returned", s.DatagramsRead, k.udp["InDatagrams"], got)
		}
		return
	}

	// The reader stopped half way: what the kernel delivered is what
	// ReadFrom returned, what the ring holds, and what the kernel still
	// buffers. A past deadline wakes the reader if it waits; it fails
	// without touching the ring.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	<-rdone
	// Reads until the ring holds datagrams: the kernel's buffer is full,
	// and the ring has grown under the flood.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 2000)
	var inRing int64
	for range 5 {
		c.r.mu.Lock()
		inRing = int64(c.r.n - c.r.head)
		c.r.mu.Unlock()
		if inRing > 0 {
			break
		}
		m, _, err := c.ReadFrom(p)
		if err != nil {
			t.Fatal(err)
		}
		order.see(p[:m])
		returned.Add(1)
	}
	if inRing == 0 {
		t.Fatal("premise: the ring holds no datagram to discard at Close")
	}
	s := c.Stats()
	got := returned.Load()
	// Drain the kernel's buffer through the socket itself.
	var inKernel int64
	for {
		uc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		m, _, err := uc.ReadFrom(p)
		if err != nil {
			break
		}
		if m != size {
			t.Fatalf("a %d-byte datagram in the kernel's buffer", m)
		}
		inKernel++
	}
	order.check(t)
	k := ns.snmp(t).sub(before)
	drops := k.udp["InErrors"] + k.devDrop
	t.Logf("sent %d: ReadFrom returned %d, the ring held %d at Close, the kernel %d; dropped %d (RcvbufErrors %d); Stats.DatagramsRead %d",
		n, got, inRing, inKernel, drops, k.udp["RcvbufErrors"], s.DatagramsRead)
	if s.DatagramsRead != uint64(got+inRing) {
		t.Errorf("Stats.DatagramsRead = %d, want %d returned + %d in the ring", s.DatagramsRead, got, inRing)
	}
	if got+inRing+inKernel+drops != n {
		t.Errorf("returned %d + ring %d + kernel %d + dropped %d = %d, want %d",
			got, inRing, inKernel, drops, got+inRing+inKernel+drops, n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, _, err := c.ReadFrom(p); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close = %v: the ring's datagrams must be discarded", err)
	}
}

// Stats counts "datagrams the kernel accepted". Datagrams that batchconn
// hands to plain (an address plain treats specially, such as one with a
// nil IP, which the kernel delivers to the host itself; a write that
// finds the write deadline passed) are accepted by the kernel too.
func TestStatsCountDatagramsSentThroughPlain(t *testing.T) {
	c, peer := batchedPair(t, Config{})
	to := &net.UDPAddr{Port: peer.LocalAddr().(*net.UDPAddr).Port} // nil IP: this host
	for i := range 5 {
		if _, err := c.WriteTo([]byte{byte(i)}, to); err != nil {
			t.Fatalf("WriteTo %v = %v", to, err)
		}
	}
	readN(t, peer, 5)
	s := c.Stats()
	t.Logf("5 datagrams to %v, all received: Stats = %+v", to, s)
	if s.DatagramsWritten != 5 || s.WriteCalls != 5 {
		t.Fatalf("Stats = %+v, want 5 datagrams in 5 calls", s)
	}
}

// The soak runs in a namespace of its own on Linux, where the kernel's
// drops can be counted.
func init() {
	soakNetwork = func(t *testing.T) soakNet {
		if os.Geteuid() != 0 {
			t.Log("not root: the soak runs on the host's loopback, where the kernel's drops cannot be counted")
			return loopbackNet()
		}
		ns := newLoopbackNetns(t)
		return soakNet{
			listen: ns.listenLoopback,
			// At most: a packet the device drops may be a GSO packet
			// of up to gsoMaxSegsProbe datagrams, counted once.
			drops: func(t *testing.T) int64 {
				k := ns.snmp(t)
				return k.udp["InErrors"] + gsoMaxSegsProbe*k.devDrop
			},
		}
	}
}
