package batchconn

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

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

// Stats shows the kernel's drop count as it stands when asked, with no
// read after the drops: a flood that fills the receive queue and stops
// shows in Stats as /proc/net/udp shows it for the socket, and after
// Close as it stood then.
func TestReceiveDropsAsTheyStandWhenAsked(t *testing.T) {
	c, peer := batchedPair(t, Config{})
	if err := c.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		peer.WriteTo(make([]byte, 1000), c.LocalAddr())
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	kernel := settledDrops(t, port)
	if kernel == 0 {
		t.Fatal("premise: the kernel dropped nothing")
	}
	if s := c.Stats(); s.ReceiveDrops != kernel {
		t.Fatalf("Stats.ReceiveDrops = %d, /proc/net/udp shows %d", s.ReceiveDrops, kernel)
	}
	if s := c.Stats(); s.DatagramsRead != 0 {
		t.Fatalf("Stats.DatagramsRead = %d: the conn read", s.DatagramsRead)
	}
	for range 500 { // more drops, which only Close sees
		peer.WriteTo(make([]byte, 1000), c.LocalAddr())
	}
	atClose := settledDrops(t, port)
	c.Close()
	if s := c.Stats(); s.ReceiveDrops != atClose || atClose <= kernel {
		t.Fatalf("after Close, Stats.ReceiveDrops = %d, want %d as it stood (%d before)", s.ReceiveDrops, atClose, kernel)
	}
}

// settledDrops is procUDPDrops once loopback has delivered what was sent:
// two readings a millisecond apart agree.
func settledDrops(t *testing.T, port int) uint64 {
	t.Helper()
	d := procUDPDrops(t, port)
	for range 100 {
		time.Sleep(time.Millisecond)
		now := procUDPDrops(t, port)
		if now == d {
			break
		}
		d = now
	}
	return d
}

// procUDPDrops reads the drops column of /proc/net/udp for the IPv4
// socket bound to port. It reads the calling thread's view: /proc/net is
// the process leader's, which a namespace test may have moved.
func procUDPDrops(t *testing.T, port int) uint64 {
	t.Helper()
	runtime.LockOSThread()
	b, err := os.ReadFile("/proc/thread-self/net/udp")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		d, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("/proc/net/udp: %q: %v", line, err)
		}
		return d
	}
	t.Fatalf("/proc/net/udp has no socket on port %d", port)
	return 0
}
