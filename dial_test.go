package batchconn

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestDialTalksToItsPeerAsNew: a dialed conn is what New makes of the
// socket net.DialUDP returns (batched where that is, with cfg applied),
// and carries a request and its reply.
func TestDialTalksToItsPeerAsNew(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	c, err := Dial("udp", srv.LocalAddr().String(), &Config{BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uc, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	want := New(uc, &Config{BatchSize: 8})
	defer want.Close()
	if got, want := c.b() != nil, want.b() != nil; got != want {
		t.Errorf("Dial batched: %v, New of a dialed socket: %v", got, want)
	}
	if c.b().s.cfg.BatchSize != 8 {
		t.Errorf("BatchSize %d, want the 8 passed to Dial", c.b().s.cfg.BatchSize)
	}
	if got, want := c.RemoteAddr().String(), srv.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %s, want %s", got, want)
	}

	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := srv.ReadFrom(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(p[:n]) != "ping" || from.String() != c.LocalAddr().String() {
		t.Fatalf("server got %q from %v, want \"ping\" from %v", p[:n], from, c.LocalAddr())
	}
	srv.WriteTo([]byte("pong"), from)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err = c.Read(p); err != nil || string(p[:n]) != "pong" {
		t.Fatalf("Read: %q, %v; want \"pong\"", p[:n], err)
	}
	if c.b() != nil && c.Stats().DatagramsRead != 1 {
		t.Errorf("Stats().DatagramsRead = %d, want the reply read through the ring", c.Stats().DatagramsRead)
	}
}

// TestDialFailsAsNetDial: on a UDP network, an address net.Dial refuses
// gets net.Dial's error, and no conn.
func TestDialFailsAsNetDial(t *testing.T) {
	for _, tc := range []struct{ network, address string }{
		{"udp", "127.0.0.1"},       // no port
		{"udp", "127.0.0.1:99999"}, // port out of range
		{"udp", ""},
		{"udp4", "[::1]:53"}, // wrong family
		{"udp6", "127.0.0.1:53"},
	} {
		c, err := Dial(tc.network, tc.address, nil)
		if c != nil {
			c.Close()
			t.Errorf("Dial(%q, %q) returned a conn", tc.network, tc.address)
		}
		_, plainErr := net.Dial(tc.network, tc.address)
		if plainErr == nil {
			t.Fatalf("net.Dial(%q, %q) succeeded: not a failing case", tc.network, tc.address)
		}
		if err == nil || err.Error() != plainErr.Error() {
			t.Errorf("Dial(%q, %q): %v, want net.Dial's %v", tc.network, tc.address, err, plainErr)
		}
	}
}

// TestDialRefusesNonUDPNetworks: a network that is not UDP fails at once,
// as net.DialUDP fails it, even where something would answer.
func TestDialRefusesNonUDPNetworks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, network := range []string{"tcp", "tcp4", "ip4:udp", "unixgram", "UDP", ""} {
		c, err := Dial(network, ln.Addr().String(), nil)
		if c != nil {
			c.Close()
			t.Errorf("Dial(%q) returned a conn", network)
		}
		_, plainErr := net.DialUDP(network, nil, nil)
		var oe *net.OpError
		var une net.UnknownNetworkError
		if !errors.As(err, &oe) || oe.Op != "dial" || !errors.As(err, &une) || err.Error() != plainErr.Error() {
			t.Errorf("Dial(%q): %v, want net.DialUDP's %v", network, err, plainErr)
		}
	}
}
