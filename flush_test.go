package batchconn

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestFullBatchGoesOutInOneSystemCall(t *testing.T) {
	c, peer := queuedPair(t, Config{BatchSize: 16, NoOffload: true})
	for i := range 16 {
		c.WriteTo([]byte{byte(i)}, peer.LocalAddr())
	}
	readN(t, peer, 16)
	if s := c.Stats(); s.WriteCalls != 1 || s.DatagramsWritten != 16 || s.FlushFull != 1 {
		t.Fatalf("Stats = %+v, want 16 datagrams in 1 call, flushed full", s)
	}
}

func TestDatagramsHeldByDeadlineLeaveWhenItMoves(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	c.WriteTo([]byte("a"), peer.LocalAddr())
	c.WriteTo([]byte("b"), peer.LocalAddr())
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if err := c.Flush(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Flush past the deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	if _, err := c.WriteTo([]byte("c"), peer.LocalAddr()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteTo past the deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	// Nothing else will write, read or flush: moving the deadline alone
	// must send what it held back, in order, and nothing it refused.
	c.SetWriteDeadline(time.Time{})
	if got := readN(t, peer, 2); got[0] != "a" || got[1] != "b" {
		t.Fatalf("peer got %q, want [a b]", got)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := peer.ReadFrom(make([]byte, 8)); err == nil {
		t.Fatal("the refused datagram was sent")
	}
}
