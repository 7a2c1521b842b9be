package batchconn

import (
	"net"
	"testing"
	"time"
)

func TestReadSendsQueueBeforeWaiting(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	c.WriteTo([]byte("request"), peer.LocalAddr())
	go func() {
		p := make([]byte, 64)
		n, from, err := peer.ReadFrom(p)
		if err == nil {
			peer.WriteTo(p[:n], from)
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 64)
	n, _, err := c.ReadFrom(p)
	if err != nil || string(p[:n]) != "request" {
		t.Fatalf("ReadFrom = %q, %v; want the echoed request", p[:n], err)
	}
	if s := c.Stats(); s.FlushRead != 1 {
		t.Fatalf("Stats = %+v, want the read to have sent the request", s)
	}
}

func TestReadFromReturnsFreshAddress(t *testing.T) {
	uc, peer := diffCase{}.listen(t)
	defer peer.Close()
	c := New(uc, nil)
	defer c.Close()
	peer.WriteTo([]byte("1"), c.LocalAddr())
	peer.WriteTo([]byte("2"), c.LocalAddr())
	p := make([]byte, 8)
	_, a1, _ := c.ReadFrom(p)
	want := a1.String()
	a1.(*net.UDPAddr).IP[0] = 99 // a caller may do what it likes with it
	a1.(*net.UDPAddr).Port = 1
	_, a2, _ := c.ReadFrom(p)
	if a2.String() != want {
		t.Fatalf("second address %v, want %v: addresses must not be shared", a2, want)
	}
}

func TestReadReportsConnectionRefusedAndKeepsWorking(t *testing.T) {
	runDiff(t, diffCase{name: "ConnectionRefused", dial: true, run: func(e *env) {
		addr := e.peerAddr()
		e.peer.Close() // nobody listens: the kernel answers with an ICMP port unreachable
		e.connWrite([]byte("to nobody"))
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		e.connRead(64)
		peer, err := net.ListenUDP("udp4", addr)
		if err != nil {
			e.t.Skipf("port %v taken again meanwhile: %v", addr, err)
		}
		e.peer = peer
		e.connWrite([]byte("works again"))
		e.peerRead()
		e.peerSend([]byte("reply"))
		e.connRead(64)
	}})
}

// A conn that reads a reply at a time reads it straight into the
// caller's buffer and holds no slot; one that finds the kernel's queue
// full of datagrams asks for more each time, up to BatchSize, and gives the
// slots back once it has handed the datagrams out.
func TestRingGrowsWithLoad(t *testing.T) {
	c, peer := batchedPair(t, Config{BatchSize: 16})
	p := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 3 {
		go func() {
			time.Sleep(time.Millisecond)
			peer.WriteTo([]byte{byte(i)}, c.LocalAddr())
		}()
		if _, _, err := c.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
	}
	if c.b().r.want != 0 || c.b().r.blk != nil {
		t.Fatalf("after single reads the ring asks for %d slots and holds %v, want 0 and none", c.b().r.want, c.b().r.blk)
	}
	before := c.Stats()
	for round := range 6 {
		for i := range 40 {
			peer.WriteTo([]byte{byte(i)}, c.LocalAddr())
		}
		for range 40 {
			if _, _, err := c.ReadFrom(p); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if c.b().r.blk != nil {
			t.Fatalf("round %d: the drained ring still holds its slots", round)
		}
	}
	s := c.Stats()
	calls, read := s.ReadCalls-before.ReadCalls, s.DatagramsRead-before.DatagramsRead
	if read != 240 || calls > 240/4 {
		t.Fatalf("bursts took %d calls for %d datagrams, want 240 datagrams in at most 60 calls", calls, read)
	}
	if c.b().r.want > 16 {
		t.Fatalf("the ring asks for %d slots, more than BatchSize 16", c.b().r.want)
	}
}
