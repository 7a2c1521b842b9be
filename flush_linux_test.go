package batchconn

import (
	"errors"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A netns is a network namespace of the test's own, with only a loopback
// device: sockets made in it can reach nothing else, so a destination
// outside 127.0.0.0/8 is refused by the kernel with ENETUNREACH and no
// traffic leaves the machine.
type netns struct{ do chan func() }

// newNetns makes a namespace; it needs root (CAP_SYS_ADMIN) and skips the
// test where it cannot have it.
func newNetns(t *testing.T) *netns {
	t.Helper()
	ns := &netns{do: make(chan func())}
	errc := make(chan error)
	go func() {
		// The thread stays locked: it lives in the namespace and ends
		// with this goroutine, never serving another.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- linkUp("lo")
		for f := range ns.do {
			f()
		}
	}()
	if err := <-errc; errors.Is(err, unix.EPERM) {
		t.Skipf("creating a network namespace needs root: %v", err)
	} else if err != nil {
		t.Fatalf("network namespace: %v", err)
	}
	t.Cleanup(func() { close(ns.do) })
	return ns
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// listen opens a UDP socket on 127.0.0.1 inside the namespace.
func (ns *netns) listen(t *testing.T) *net.UDPConn {
	t.Helper()
	var uc *net.UDPConn
	var err error
	done := make(chan struct{})
	ns.do <- func() {
		uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		close(done)
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	return uc
}

// unreachable is refused by the kernel of a netns: it has no route there.
var unreachable = &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 9}

// refusingPair returns, inside a network namespace of the test's own, a
// batchconn that queues every write and a plain peer.
func refusingPair(t *testing.T) (*PacketConn, *net.UDPConn) {
	ns := newNetns(t)
	plain, uc, peer := ns.listen(t), ns.listen(t), ns.listen(t)
	defer plain.Close()
	if _, err := plain.WriteTo([]byte("x"), unreachable); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("premise: plain WriteTo to %v = %v, want ENETUNREACH", unreachable, err)
	}
	c := New(uc, &Config{idleGap: time.Hour, MaxDelay: time.Hour})
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

// setMTU sets a device's MTU inside the namespace.
func (ns *netns) setMTU(t *testing.T, name string, mtu int) {
	t.Helper()
	var err error
	done := make(chan struct{})
	ns.do <- func() {
		defer close(done)
		var fd int
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return
		}
		defer unix.Close(fd)
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(name); err != nil {
			return
		}
		ifr.SetUint32(uint32(mtu))
		err = unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr)
	}
	<-done
	if err != nil {
		t.Fatalf("set MTU of %s: %v", name, err)
	}
}
