package batchconn

import (
	"errors"
	"net"
	"runtime"
	"testing"

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
