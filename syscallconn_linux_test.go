package batchconn

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// SyscallConn reaches the socket for options, and refuses raw reads and
// writes that would bypass the ring and the queue; a conn served one
// datagram at a time hands out the wrapped conn's own.
func TestSyscallConnSetsOptionsOnly(t *testing.T) {
	c, _ := batchedPair(t, Config{})
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ttl int
	if err := rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, 7)
		ttl, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL)
	}); err != nil || ttl != 7 {
		t.Fatalf("Control: TTL %d, %v; want the option set on the socket", ttl, err)
	}
	if err := rc.Read(func(uintptr) bool { return true }); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Read = %v, want errors.ErrUnsupported", err)
	}
	if err := rc.Write(func(uintptr) bool { return true }); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Write = %v, want errors.ErrUnsupported", err)
	}
	if !c.Batching() {
		t.Error("Batching() = false on a batched conn")
	}

	single := New(hidden{c.Unwrap()}, nil)
	if single.Batching() {
		t.Error("Batching() = true on a conn served one datagram at a time")
	}
	if _, err := single.SyscallConn(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyscallConn of a wrapper without one: %v, want errors.ErrUnsupported", err)
	}
}

// hidden is a net.PacketConn that shows none of the wrapped conn's other
// methods.
type hidden struct{ net.PacketConn }
