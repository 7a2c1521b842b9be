package batchconn

import (
	"net"
	"testing"
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
