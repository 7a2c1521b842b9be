package batchconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A slow path: a veth link limited by tbf, between network namespaces of
// the test's own (netns_linux_test.go). The sender's socket buffer fills
// with datagrams queued in the qdisc. The tests need root; CI runs as
// root, with iproute2 and nftables.

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
	if c, ok := conn.(*PacketConn); ok && c.b() != nil {
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
	// buffer fills a datagram at a time. MaxDelay well above the time the
	// loop below takes for a few writes, even under the race detector, so
	// that the queue goes out on the timer, not from a WriteTo that finds
	// it aged.
	c := newConn(uc, &Config{NoOffload: true, MaxDelay: 5 * time.Millisecond}, hooks{idleGap: time.Hour})
	if c.b() == nil {
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
		if i >= 40 && c.b().w.io.writeWaiting() && c.b().w.queued.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer never waited for room (%d written, %d queued)", i, c.b().w.queued.Load())
		}
		if i < 40 || c.b().w.queued.Load() < 8 {
			if _, err := c.WriteTo(slowPayload(i), rx.LocalAddr()); err != nil {
				t.Fatalf("WriteTo %d = %v", i, err)
			}
			accepted = append(accepted, i)
			i++
			continue
		}
		time.Sleep(time.Millisecond)
	}
	queued := c.b().w.queued.Load()
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
