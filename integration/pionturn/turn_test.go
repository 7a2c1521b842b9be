package pionturn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchconn/batchconn/integration/internal/itest"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	realm    = "batchconn.test"
	password = "secret"

	datagrams = 2000 // per flow
	window    = 32   // datagrams of a flow in flight at most: no socket buffer can overflow
	stall     = 10 * time.Second
)

// size is the payload size of datagram seq of flow id: 12 to 1200 bytes
// on odd flows; 1000 bytes on even flows, whose runs of datagrams of one
// size to one destination batchconn can send as one segmented message
// (GSO) and receive coalesced (GRO).
func size(id, seq uint32) int {
	if id%2 == 0 {
		return 1000
	}
	return 12 + int(seq*37)%1189
}

// relayGen allocates each relay socket on 127.0.0.1, held as the test's
// kind says, and keeps them to close at the end.
type relayGen struct {
	kind itest.Kind
	mu   sync.Mutex
	pcs  []net.PacketConn
}

func (g *relayGen) Validate() error { return nil }

func (g *relayGen) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: itest.Loopback, Port: port})
	if err != nil {
		return nil, nil, err
	}
	if err := uc.SetReadBuffer(itest.ReadBuffer); err != nil {
		uc.Close()
		return nil, nil, err
	}
	pc := g.kind.Wrap(uc)
	g.mu.Lock()
	g.pcs = append(g.pcs, pc)
	g.mu.Unlock()
	return pc, pc.LocalAddr(), nil
}

func (g *relayGen) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("no TCP relays here")
}

func (g *relayGen) relays() []net.PacketConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]net.PacketConn(nil), g.pcs...)
}

// logSink keeps what pion logs at warning level and above. A warning
// ("Receive buffer full", "Failed to send ...") means a lost datagram.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.lines = append(s.lines, strings.TrimSpace(string(p)))
	s.mu.Unlock()
	return len(p), nil
}

func (s *logSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lines
	s.lines = nil
	return l
}

// A flow is datagrams 0..datagrams-1 from one endpoint to another. The
// receiver hands a credit back for each datagram it has checked; the
// sender needs one to send, so at most window are in flight.
type flow struct {
	id      uint32
	name    string
	send    func(p []byte) error
	from    string // the source address the receiver must see
	credits chan struct{}

	// receiver side, touched only by the receiving endpoint's reader
	next uint32
}

// An endpoint reads the datagrams of its flows from pc, in one goroutine.
type endpoint struct {
	name  string
	pc    net.PacketConn
	flows map[uint32]*flow
}

// receive reads until every flow of ep has all its datagrams, each in
// order, from the right address, with the content sent.
func (ep *endpoint) receive(ctx context.Context) error {
	buf := make([]byte, 65535)
	left := 0
	for range ep.flows {
		left += datagrams
	}
	for left > 0 {
		if ctx.Err() != nil {
			return nil
		}
		ep.pc.SetReadDeadline(time.Now().Add(stall))
		n, from, err := ep.pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("%s: read with %d datagrams still to come: %w", ep.name, left, err)
		}
		p := buf[:n]
		if len(p) < 4 {
			return fmt.Errorf("%s: datagram of %d bytes from %v", ep.name, n, from)
		}
		id := uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		f := ep.flows[id]
		if f == nil {
			return fmt.Errorf("%s: datagram of unknown flow %d from %v", ep.name, id, from)
		}
		seq, err := itest.ParsePayload(p, id)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", ep.name, f.name, err)
		}
		if seq != f.next {
			return fmt.Errorf("%s: %s: datagram %d where %d was due (lost or reordered)", ep.name, f.name, seq, f.next)
		}
		if from.String() != f.from {
			return fmt.Errorf("%s: %s: datagram %d from %v, want %s", ep.name, f.name, seq, from, f.from)
		}
		f.next++
		left--
		f.credits <- struct{}{}
	}
	return nil
}

// run sends the datagrams of f, window by window.
func (f *flow) run(ctx context.Context) error {
	for seq := range uint32(datagrams) {
		select {
		case <-f.credits:
		case <-ctx.Done():
			return nil
		case <-time.After(stall):
			return fmt.Errorf("%s: no datagram of the last %d sent arrived within %v (sent %d of %d)", f.name, window, stall, seq, datagrams)
		}
		if err := f.send(itest.Payload(f.id, seq, size(f.id, seq))); err != nil {
			return fmt.Errorf("%s: datagram %d: %w", f.name, seq, err)
		}
	}
	return nil
}

func newFlow(id uint32, name string, from net.Addr, send func([]byte) error) *flow {
	f := &flow{id: id, name: name, from: from.String(), send: send, credits: make(chan struct{}, window)}
	for range window {
		f.credits <- struct{}{}
	}
	return f
}

// TestRelay runs a TURN server whose listener and relay sockets are held
// as the kind says, with two clients (their sockets held the same way),
// each with a relay allocation, and a plain UDP peer. Six flows of 2000
// datagrams (see size) run at once, each at most 32 datagrams ahead of
// its receiver: A to B and B to A through both
// relays, A to the peer and back through A's relay, B to the peer and
// back through B's relay. Every datagram must arrive exactly once, in
// order, from the right address, byte for byte, and pion must log no
// warning.
func TestRelay(t *testing.T) {
	for _, kind := range itest.Kinds {
		t.Run(kind.Name, func(t *testing.T) { testRelay(t, kind) })
	}
}

func testRelay(t *testing.T, kind itest.Kind) {
	logs := &logSink{}
	lf := &logging.DefaultLoggerFactory{Writer: logs, DefaultLogLevel: logging.LogLevelWarn, ScopeLevels: map[string]logging.LogLevel{}}
	var allocErrs []string
	var allocMu sync.Mutex

	srvPC := itest.ListenUDP(t, kind)
	gen := &relayGen{kind: kind}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         realm,
		LoggerFactory: lf,
		AuthHandler: func(username, realm string, _ net.Addr) ([]byte, bool) {
			return turn.GenerateAuthKey(username, realm, password), true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: srvPC, RelayAddressGenerator: gen}},
		EventHandler: turn.EventHandler{
			OnAllocationError: func(src, dst net.Addr, proto, msg string) {
				allocMu.Lock()
				allocErrs = append(allocErrs, fmt.Sprintf("%v->%v %s: %s", src, dst, proto, msg))
				allocMu.Unlock()
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srvClosed := false
	closeServer := func() {
		if !srvClosed {
			srvClosed = true
			if err := srv.Close(); err != nil {
				t.Errorf("server Close: %v", err)
			}
		}
		for _, pc := range gen.relays() {
			pc.Close() // normally closed by the allocation's deletion already
		}
	}
	defer closeServer()

	type client struct {
		pc    net.PacketConn
		c     *turn.Client
		relay net.PacketConn
	}
	newClient := func(user string) *client {
		pc := itest.ListenUDP(t, kind)
		c, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: srvPC.LocalAddr().String(),
			TURNServerAddr: srvPC.LocalAddr().String(),
			Conn:           pc,
			Username:       user,
			Password:       password,
			Realm:          realm,
			LoggerFactory:  lf,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		mapped, err := c.SendBindingRequest()
		if err != nil {
			t.Fatalf("%s: binding request: %v", user, err)
		}
		if mapped.String() != pc.LocalAddr().String() {
			t.Fatalf("%s: server saw the client at %v, want %v", user, mapped, pc.LocalAddr())
		}
		relay, err := c.Allocate()
		if err != nil {
			t.Fatalf("%s: allocate: %v", user, err)
		}
		return &client{pc: pc, c: c, relay: relay}
	}
	a, b := newClient("alice"), newClient("bob")
	relaysClosed := false
	closeRelays := func() {
		if !relaysClosed {
			relaysClosed = true
			a.relay.Close()
			b.relay.Close()
		}
	}
	defer closeRelays()

	peerUC, err := net.ListenUDP("udp4", &net.UDPAddr{IP: itest.Loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer peerUC.Close()
	peerUC.SetReadBuffer(itest.ReadBuffer)
	peer := net.PacketConn(peerUC)

	// Permissions are per peer IP, and everything is on 127.0.0.1: one
	// each lets every flow in.
	for _, c := range []*client{a, b} {
		if err := c.c.CreatePermission(peer.LocalAddr()); err != nil {
			t.Fatalf("create permission: %v", err)
		}
	}

	sendVia := func(relay net.PacketConn, to net.Addr) func([]byte) error {
		return func(p []byte) error { _, err := relay.WriteTo(p, to); return err }
	}
	ra, rb, pa := a.relay.LocalAddr(), b.relay.LocalAddr(), peer.LocalAddr()
	flows := []*flow{
		newFlow(1, "A to B", ra, sendVia(a.relay, rb)),
		newFlow(2, "B to A", rb, sendVia(b.relay, ra)),
		newFlow(3, "A to peer", ra, sendVia(a.relay, pa)),
		newFlow(4, "peer to A", pa, sendVia(peer, ra)),
		newFlow(5, "B to peer", rb, sendVia(b.relay, pa)),
		newFlow(6, "peer to B", pa, sendVia(peer, rb)),
	}
	endpoints := []*endpoint{
		{name: "A's relay", pc: a.relay, flows: map[uint32]*flow{2: flows[1], 4: flows[3]}},
		{name: "B's relay", pc: b.relay, flows: map[uint32]*flow{1: flows[0], 6: flows[5]}},
		{name: "peer", pc: peer, flows: map[uint32]*flow{3: flows[2], 5: flows[4]}},
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, len(flows)+len(endpoints))
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Go(func() { errc <- f.run(ctx) })
	}
	for _, ep := range endpoints {
		wg.Go(func() { errc <- ep.receive(ctx) })
	}
	for range len(flows) + len(endpoints) {
		if err := <-errc; err != nil {
			t.Error(err)
			cancel()
		}
	}
	wg.Wait()
	for _, l := range logs.take() {
		t.Errorf("pion logged during the traffic: %s", l)
	}

	// Tear down in order: deallocate (the server then closes the relay
	// sockets), close the clients and their sockets, then the server.
	closeRelays()
	deadline := time.Now().Add(10 * time.Second)
	for srv.AllocationCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.AllocationCount(); n > 0 {
		t.Errorf("%d allocations left 10s after the clients deallocated", n)
	}
	for _, c := range []*client{a, b} {
		c.c.Close()
		if err := c.pc.Close(); err != nil {
			t.Errorf("client socket Close: %v", err)
		}
	}
	closeServer()
	allocMu.Lock()
	for _, e := range allocErrs {
		t.Errorf("server: allocation error: %s", e)
	}
	allocMu.Unlock()
	for _, l := range logs.take() {
		t.Logf("pion logged at teardown: %s", l)
	}
	// batchconn counts a datagram once its system call has returned,
	// which may be after the receiver has it: read the counts once every
	// socket is closed.
	if !t.Failed() && kind.Name != itest.Plain.Name {
		const each = 2 * datagrams // per socket, each way, at least
		check := func(name string, pc net.PacketConn, minRead, minWritten uint64) {
			st, ok := itest.Stats(pc)
			if !ok {
				t.Errorf("%s is not a batchconn", name)
				return
			}
			t.Logf("%s: %+v", name, st)
			if st.DatagramsRead < minRead || st.DatagramsWritten < minWritten {
				t.Errorf("%s: batchconn read %d and wrote %d datagrams, want at least %d and %d: traffic bypassed it",
					name, st.DatagramsRead, st.DatagramsWritten, minRead, minWritten)
			}
		}
		check("server listener", srvPC, 2*each, 2*each)
		check("client A", a.pc, each, each)
		check("client B", b.pc, each, each)
		for _, pc := range gen.relays() {
			check("relay "+pc.LocalAddr().String(), pc, each, each)
		}
	}
}
