package quicgo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
	"github.com/batchconn/batchconn/integration/internal/itest"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// ecnWatch records the ECN states quic-go's connections go through, as
// its qlog events report them (recovery:ecn_state_updated), for the
// server's side and the client's. quic.Config.Tracer is v0.61's hook:
// quic-go hands every event to the trace's recorder, and ecnWatch keeps
// only the ECN states.
type ecnWatch struct {
	mu     sync.Mutex
	states [2][]qlog.ECNState // [0] server, [1] client, in order
}

// config returns quicConfig with a tracer that records into w.
func (w *ecnWatch) config() *quic.Config {
	cfg := quicConfig()
	cfg.Tracer = func(_ context.Context, isClient bool, _ quic.ConnectionID) qlogwriter.Trace {
		return ecnTrace{w, isClient}
	}
	return cfg
}

// final returns the last ECN state of the client's side or the server's,
// and all it went through; "" where quic-go reported none (no ECN).
func (w *ecnWatch) final(client bool) (qlog.ECNState, []qlog.ECNState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := slices.Clone(w.states[side(client)])
	if len(s) == 0 {
		return "", nil
	}
	return s[len(s)-1], s
}

func side(client bool) int {
	if client {
		return 1
	}
	return 0
}

// ecnTrace is one connection's qlogwriter.Trace, and its Recorder.
type ecnTrace struct {
	w      *ecnWatch
	client bool
}

func (t ecnTrace) AddProducer() qlogwriter.Recorder { return t }

// SupportsSchemas is false so that http3 adds no producer of its own;
// quic-go's connection records into the trace without asking.
func (t ecnTrace) SupportsSchemas(string) bool { return false }

func (t ecnTrace) RecordEvent(ev qlogwriter.Event) {
	if e, ok := ev.(qlog.ECNStateUpdated); ok {
		t.w.mu.Lock()
		t.w.states[side(t.client)] = append(t.w.states[side(t.client)], e.State)
		t.w.mu.Unlock()
	}
}

func (t ecnTrace) Close() error { return nil }

// TestOOBPath checks that quic-go takes its out-of-band path on a
// batchconn as on a raw socket: both connections of a bulk transfer (8 MB
// each way) use GSO (ConnectionState().GSO), and quic-go's ECN
// validation reaches "capable" on both sides, which needs each side's
// ECT(0)-marked packets (IP_TOS with WriteMsgUDP) to arrive marked and
// the marks to reach the other side's quic-go (IP_TOS from ReadBatch).
// On batchconn, each receiver's conn had GRO on: quic-go's segmented
// messages stay coalesced on loopback, and batchconn cuts them up.
func TestOOBPath(t *testing.T) {
	size := int64(8 << 20)
	if testing.Short() {
		size = 2 << 20
	}
	for _, kind := range itest.Kinds {
		t.Run(kind.Name, func(t *testing.T) {
			var w ecnWatch
			r, ok := bulk(t, newPair(t, kind.Wrap), size, w.config())
			if !ok {
				return
			}
			if !r.srvState.GSO || !r.cliState.GSO {
				t.Errorf("GSO: server %v, client %v; want both true", r.srvState.GSO, r.cliState.GSO)
			}
			for _, client := range []bool{false, true} {
				name := map[bool]string{false: "server", true: "client"}[client]
				last, all := w.final(client)
				t.Logf("%s: GSO %v, ECN states %v", name, map[bool]bool{false: r.srvState.GSO, true: r.cliState.GSO}[client], all)
				if last != qlog.ECNStateCapable || slices.Contains(all, qlog.ECNStateFailed) {
					t.Errorf("%s: quic-go's ECN states %v, want them to end in %q", name, all, qlog.ECNStateCapable)
				}
			}
			if !r.batched {
				return
			}
			checkThrough(t, size, r.srv, r.cli, &r.srvQ, &r.cliQ)
			for _, s := range []struct {
				name string
				st   batchconn.Stats
			}{{"server", r.srv}, {"client", r.cli}} {
				checkBatched(t, s.name, s.st)
				if s.st.OffloadReceived == 0 {
					t.Errorf("%s: no datagram came coalesced (OffloadReceived 0): GRO was not used on the receiver of a bulk transfer", s.name)
				}
			}
		})
	}
}

// sourceRecorder is a client's socket that records where each datagram it
// reads came from. It hides the socket's other methods from quic-go, which
// then reads with ReadFrom: the client is not what is under test.
type sourceRecorder struct {
	net.PacketConn
	mu   sync.Mutex
	from map[netip.AddrPort]int
}

func (c *sourceRecorder) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if ua, ok := addr.(*net.UDPAddr); ok && err == nil {
		c.mu.Lock()
		c.from[ua.AddrPort()]++
		c.mu.Unlock()
	}
	return n, addr, err
}

// SetReadBuffer and SetWriteBuffer let quic-go raise the client's
// buffers, as on a raw socket.
func (c *sourceRecorder) SetReadBuffer(n int) error {
	return c.PacketConn.(*net.UDPConn).SetReadBuffer(n)
}

func (c *sourceRecorder) SetWriteBuffer(n int) error {
	return c.PacketConn.(*net.UDPConn).SetWriteBuffer(n)
}

func (c *sourceRecorder) sources() map[netip.AddrPort]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[netip.AddrPort]int, len(c.from))
	for k, v := range c.from {
		out[k] = v
	}
	return out
}

// TestWildcardSource runs a quic-go server on a socket bound to 0.0.0.0,
// and to [::] where the host has IPv6, and has clients connect to it at
// 127.0.0.1, 127.0.0.2 where the host has it, and ::1 for [::]. Every
// datagram a client receives must come from the address it dialed, and
// the server's connection must know that address as its local one: quic-go
// reads each packet's destination (IP_PKTINFO, IPV6_PKTINFO, which it
// turns on through SyscallConn for a wildcard socket) and sends from it
// (the same control message with WriteMsgUDP). The "batchconn/kernel"
// kind turns batchconn's own choice of reply sources off
// (KernelChoosesSource), so that only quic-go's packet info makes the
// replies right.
func TestWildcardSource(t *testing.T) {
	kinds := append(slices.Clone(itest.Kinds), itest.Kind{Name: "batchconn-kernel-source", Wrap: func(uc *net.UDPConn) net.PacketConn {
		return batchconn.New(uc, &batchconn.Config{KernelChoosesSource: true})
	}})
	v4 := []string{"127.0.0.1"}
	if probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}); err == nil {
		probe.Close()
		v4 = append(v4, "127.0.0.2")
	} else {
		t.Logf("127.0.0.2 is not this host's (%v): clients dial 127.0.0.1 only", err)
	}
	listens := []struct {
		network, addr string
		targets       []string
	}{{"udp4", "0.0.0.0", v4}}
	if probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		probe.Close()
		listens = append(listens, struct {
			network, addr string
			targets       []string
		}{"udp", "::", append(slices.Clone(v4), "::1")})
	} else {
		t.Logf("no IPv6 loopback (%v): no [::] server", err)
	}
	for _, kind := range kinds {
		for _, l := range listens {
			t.Run(kind.Name+"/"+l.addr, func(t *testing.T) {
				uc, err := net.ListenUDP(l.network, &net.UDPAddr{IP: net.ParseIP(l.addr)})
				if err != nil {
					t.Fatal(err)
				}
				spc := kind.Wrap(uc)
				defer spc.Close()
				testWildcardSource(t, spc, l.targets)
			})
		}
	}
}

func testWildcardSource(t *testing.T, spc net.PacketConn, targets []string) {
	srv := &quic.Transport{Conn: spc}
	defer srv.Close()
	srvTLS, cliTLS := itest.TLS(t, alpn)
	ln, err := srv.Listen(srvTLS, quicConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := spc.LocalAddr().(*net.UDPAddr).Port

	// The server echoes one stream a connection and reports the local
	// address quic-go gave the connection.
	locals := make(chan netip.Addr, len(targets))
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- func() error {
			for range targets {
				conn, err := ln.Accept(ctx)
				if err != nil {
					return fmt.Errorf("accept: %w", err)
				}
				locals <- conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
				go func() {
					defer conn.CloseWithError(0, "")
					str, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					io.Copy(str, str)
					str.Close()
					<-conn.Context().Done() // the client closes once it has the echo
				}()
			}
			return nil
		}()
	}()

	for _, target := range targets {
		dst := netip.AddrPortFrom(netip.MustParseAddr(target), uint16(port))
		network, local := "udp4", net.IPv4(127, 0, 0, 1)
		if dst.Addr().Is6() {
			network, local = "udp6", net.IPv6loopback
		}
		uc, err := net.ListenUDP(network, &net.UDPAddr{IP: local})
		if err != nil {
			t.Fatal(err)
		}
		rec := &sourceRecorder{PacketConn: uc, from: map[netip.AddrPort]int{}}
		cli := &quic.Transport{Conn: rec}
		err = func() error {
			conn, err := cli.Dial(ctx, net.UDPAddrFromAddrPort(dst), cliTLS, quicConfig())
			if err != nil {
				return fmt.Errorf("dial: %w", err)
			}
			defer conn.CloseWithError(0, "")
			str, err := conn.OpenStreamSync(ctx)
			if err != nil {
				return fmt.Errorf("open stream: %w", err)
			}
			const n = 100_000
			werr := make(chan error, 1)
			go func() {
				err := itest.WriteStream(str, 9, n, 16<<10)
				if err == nil {
					err = str.Close()
				}
				werr <- err
			}()
			if err := itest.CheckStream(str, 9, n); err != nil {
				return fmt.Errorf("echo: %w", err)
			}
			return <-werr
		}()
		cli.Close()
		uc.Close()
		if err != nil {
			t.Errorf("to %s: %v", dst, err)
			continue
		}
		select {
		case got := <-locals:
			if got != dst.Addr() {
				t.Errorf("to %s: the server's connection has local address %s: quic-go did not read the packets' destination", dst, got)
			}
		case <-ctx.Done():
			t.Fatalf("to %s: the server accepted no connection", dst)
		}
		from := rec.sources()
		t.Logf("to %s: the client received from %v", dst, from)
		for src, k := range from {
			if src.Addr().Unmap() != dst.Addr() || src.Port() != dst.Port() {
				t.Errorf("to %s: the client received %d datagrams from %s", dst, k, src)
			}
		}
		if len(from) == 0 {
			t.Errorf("to %s: the client received nothing", dst)
		}
	}
	if err := <-srvDone; err != nil {
		t.Error(err)
	}
	if st, ok := itest.Stats(spc); ok {
		t.Logf("server batchconn: %+v", st)
		if st.DatagramsRead == 0 || st.DatagramsWritten == 0 {
			t.Errorf("the server's batchconn read %d datagrams and wrote %d: quic-go bypassed it", st.DatagramsRead, st.DatagramsWritten)
		}
		// A write the queue carried counts in one of the Flush
		// counters; one plain sent at once (a control message the queue
		// cannot check, a source it has not heard) counts in none.
		queued := st.FlushIdle + st.FlushFull + st.FlushTimer + st.FlushRead + st.FlushExplicit + st.FlushClose
		t.Logf("server batchconn: %d send calls, %d of them of the queue, the rest by plain at once", st.WriteCalls, queued)
	}
}

// TestWrappedNonUDPConn: a conn that wraps something other than a
// *net.UDPConn has a *net.UDPConn's methods all the same, and those the
// wrapped conn lacks fail with errors.ErrUnsupported: quic-go's Transport
// then refuses it (SyscallConn's error is fatal to it), where on the
// wrapped conn itself it runs, one datagram at a time. doc.go says so
// ("What differs"); this test keeps the sentence true.
func TestWrappedNonUDPConn(t *testing.T) {
	srvTLS, _ := itest.TLS(t, alpn)
	hide := func(uc *net.UDPConn) net.PacketConn { return struct{ net.PacketConn }{uc} } // no optional methods
	for _, kind := range []itest.Kind{
		{Name: "itself", Wrap: hide},
		{Name: "wrapped", Wrap: func(uc *net.UDPConn) net.PacketConn { return batchconn.New(hide(uc), nil) }},
	} {
		tr := &quic.Transport{Conn: itest.ListenUDP(t, kind)}
		ln, err := tr.Listen(srvTLS, quicConfig())
		switch {
		case kind.Name == "itself" && err != nil:
			t.Errorf("quic-go on the conn itself: %v", err)
		case kind.Name == "wrapped" && !errors.Is(err, errors.ErrUnsupported):
			t.Errorf("quic-go on batchconn over a non-UDP conn: Listen = %v, want the error doc.go describes (ErrUnsupported)", err)
		}
		if ln != nil {
			ln.Close()
		}
		tr.Close()
	}
}
