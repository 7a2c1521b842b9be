package quicgo

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
	"github.com/batchconn/batchconn/integration/internal/itest"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/goleak"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const alpn = "batchconn-test"

// A pair is a server and a client quic.Transport on two loopback sockets.
type pair struct {
	srvPC, cliPC net.PacketConn
	srv, cli     *quic.Transport
	once         sync.Once
}

func newPair(tb testing.TB, wrap func(*net.UDPConn) net.PacketConn) *pair {
	tb.Helper()
	kind := itest.Kind{Name: "custom", Wrap: wrap}
	p := &pair{srvPC: itest.ListenUDP(tb, kind), cliPC: itest.ListenUDP(tb, kind)}
	p.srv = &quic.Transport{Conn: p.srvPC}
	p.cli = &quic.Transport{Conn: p.cliPC}
	tb.Cleanup(func() {
		if err := p.close(); err != nil {
			tb.Error(err)
		}
	})
	return p
}

// close closes both transports, then both sockets (which sends what
// batchconn still has queued).
func (p *pair) close() error {
	var errs []error
	p.once.Do(func() {
		errs = append(errs, p.cli.Close(), p.srv.Close(), p.cliPC.Close(), p.srvPC.Close())
	})
	return errors.Join(errs...)
}

func quicConfig() *quic.Config {
	return &quic.Config{MaxIdleTimeout: 30 * time.Second, HandshakeIdleTimeout: 10 * time.Second}
}

// TestBulk moves 50 MB each way at once on one bidirectional stream,
// every byte checked, and on batchconn requires that the datagrams went
// through it: quic-go does not reach the socket behind it.
func TestBulk(t *testing.T) {
	size := int64(50 << 20)
	if testing.Short() {
		size = 5 << 20
	}
	for _, kind := range itest.Kinds {
		t.Run(kind.Name, func(t *testing.T) {
			r, ok := bulk(t, newPair(t, kind.Wrap), size, quicConfig())
			if ok && r.batched {
				checkThrough(t, size, r.srv, r.cli, &r.srvQ, &r.cliQ)
			}
		})
	}
}

// A bulkResult is what bulk saw of one transfer: quic-go's counts and
// connection states on each side, and, on batchconn, each conn's Stats
// over the transfer.
type bulkResult struct {
	elapsed            time.Duration
	srvQ, cliQ         quic.ConnectionStats
	srvState, cliState quic.ConnectionState
	batched            bool            // the pair is batchconn's
	srv, cli           batchconn.Stats // over the transfer, on batchconn
}

// bulk moves size bytes each way at once on one bidirectional stream of
// one connection between p's transports, every byte checked, each side
// with cfg, then closes p. It reports failures on t and returns false
// with them.
func bulk(t *testing.T, p *pair, size int64, cfg *quic.Config) (r bulkResult, ok bool) {
	t.Helper()
	const seedUp, seedDown = 1, 2
	srvTLS, cliTLS := itest.TLS(t, alpn)
	ln, err := p.srv.Listen(srvTLS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()

	// Each side closes the connection only once the other has all it
	// sent: the server waits for the client to close, the client for the
	// server to have read everything (a stream's Close returns once its
	// data is queued, not delivered).
	srvRead := make(chan error, 1) // the server has read and written all
	srvDone := make(chan error, 1) // the server saw the client close
	go func() {
		srvDone <- func() error {
			conn, err := ln.Accept(ctx)
			if err != nil {
				srvRead <- fmt.Errorf("accept: %w", err)
				return nil
			}
			defer func() {
				conn.CloseWithError(0, "")
				r.srvQ, r.srvState = conn.ConnectionStats(), conn.ConnectionState()
			}()
			srvRead <- func() error {
				str, err := conn.AcceptStream(ctx)
				if err != nil {
					return fmt.Errorf("accept stream: %w", err)
				}
				str.SetDeadline(deadline)
				werr := make(chan error, 1)
				go func() {
					err := itest.WriteStream(str, seedDown, size, 64<<10)
					if err == nil {
						err = str.Close()
					}
					werr <- err
				}()
				if err := itest.CheckStream(str, seedUp, size); err != nil {
					return fmt.Errorf("server read: %w", err)
				}
				if err := <-werr; err != nil {
					return fmt.Errorf("server write: %w", err)
				}
				return nil
			}()
			select {
			case <-conn.Context().Done():
				return nil
			case <-ctx.Done():
				return errors.New("the client did not close the connection")
			}
		}()
	}()

	var before [2]batchconn.Stats
	before[0], r.batched = itest.Stats(p.srvPC)
	before[1], _ = itest.Stats(p.cliPC)
	start := time.Now()
	failed := false
	err = func() error {
		conn, err := p.cli.Dial(ctx, p.srvPC.LocalAddr(), cliTLS, cfg)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer func() {
			conn.CloseWithError(0, "done")
			r.cliQ, r.cliState = conn.ConnectionStats(), conn.ConnectionState()
		}()
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			return fmt.Errorf("open stream: %w", err)
		}
		str.SetDeadline(deadline)
		werr := make(chan error, 1)
		go func() {
			err := itest.WriteStream(str, seedUp, size, 64<<10)
			if err == nil {
				err = str.Close()
			}
			werr <- err
		}()
		if err := itest.CheckStream(str, seedDown, size); err != nil {
			return fmt.Errorf("client read: %w", err)
		}
		if err := <-werr; err != nil {
			return fmt.Errorf("client write: %w", err)
		}
		return <-srvRead
	}()
	if err != nil {
		t.Error(err)
		failed = true
	}
	if err := <-srvDone; err != nil {
		t.Error(err)
		failed = true
	}
	r.elapsed = time.Since(start)
	ln.Close()
	if err := p.close(); err != nil {
		t.Error(err)
		failed = true
	}
	t.Logf("%d MB each way in %v", size>>20, r.elapsed.Round(time.Millisecond))
	t.Logf("quic-go: client sent %d packets, server received %d (%d not processed); server sent %d, client received %d (%d not processed)",
		r.cliQ.PacketsSent, r.srvQ.PacketsReceived, int64(r.cliQ.PacketsSent)-int64(r.srvQ.PacketsReceived),
		r.srvQ.PacketsSent, r.cliQ.PacketsReceived, int64(r.srvQ.PacketsSent)-int64(r.cliQ.PacketsReceived))
	if r.batched {
		srv, _ := itest.Stats(p.srvPC)
		cli, _ := itest.Stats(p.cliPC)
		r.srv, r.cli = sub(srv, before[0]), sub(cli, before[1])
	}
	return r, !failed
}

func sub(a, b batchconn.Stats) batchconn.Stats {
	a.DatagramsRead -= b.DatagramsRead
	a.ReadCalls -= b.ReadCalls
	a.DatagramsWritten -= b.DatagramsWritten
	a.WriteCalls -= b.WriteCalls
	a.OffloadSent -= b.OffloadSent
	a.OffloadReceived -= b.OffloadReceived
	return a
}

// checkThrough requires that the datagrams that carried size bytes each
// way went through batchconn on both sides:
//   - each side's batchconn wrote as many datagrams as quic-go counted
//     packets sent (give or take a few: QUIC coalesces handshake packets
//     into one datagram);
//   - it read at least as many as quic-go counted packets received. It
//     may have read more: quic-go drops what arrives while a connection
//     has 256 packets queued unprocessed (protocol.MaxConnUnprocessedPackets),
//     on plain as well, and counts only what it processes;
//   - each side wrote at least one datagram per 1500 bytes it sent, and
//     read about as many as the other wrote.
//
// srvQ and cliQ are quic-go's own counts; srvQ may be nil where the
// server's connection is out of reach.
func checkThrough(t *testing.T, size int64, srv, cli batchconn.Stats, srvQ, cliQ *quic.ConnectionStats) {
	t.Helper()
	t.Logf("server batchconn: %+v", srv)
	t.Logf("client batchconn: %+v", cli)
	about := func(a, b uint64) bool { return a <= b+b/100+20 && b <= a+a/100+20 }
	for _, q := range []struct {
		side string
		bc   batchconn.Stats
		q    *quic.ConnectionStats
	}{{"server", srv, srvQ}, {"client", cli, cliQ}} {
		if q.q == nil {
			continue
		}
		t.Logf("%s quic-go: %d packets received, %d sent", q.side, q.q.PacketsReceived, q.q.PacketsSent)
		if !about(q.bc.DatagramsWritten, q.q.PacketsSent) || q.bc.DatagramsRead+20 < q.q.PacketsReceived {
			t.Errorf("%s: quic-go received %d packets and sent %d, but its batchconn read %d datagrams and wrote %d: quic-go bypassed batchconn",
				q.side, q.q.PacketsReceived, q.q.PacketsSent, q.bc.DatagramsRead, q.bc.DatagramsWritten)
		}
	}
	least := uint64(size / 1500)
	for _, c := range []struct {
		what           string
		wrote, read    uint64
		writer, reader string
	}{
		{"client to server", cli.DatagramsWritten, srv.DatagramsRead, "client", "server"},
		{"server to client", srv.DatagramsWritten, cli.DatagramsRead, "server", "client"},
	} {
		if c.wrote < least {
			t.Errorf("%s: the %s's batchconn wrote %d datagrams, but %d bytes need at least %d: quic-go bypassed batchconn", c.what, c.writer, c.wrote, size, least)
		}
		if c.read > c.wrote || !about(c.read, c.wrote) {
			t.Errorf("%s: the %s's batchconn wrote %d datagrams and the %s's read %d", c.what, c.writer, c.wrote, c.reader, c.read)
		}
	}
}

// TestNoBypass checks what quic-go sees of a batchconn and that it
// still reads and writes through the ring and the queue. batchconn is a
// quic.OOBCapablePacketConn (SyscallConn, SetReadBuffer, ReadMsgUDP,
// WriteMsgUDP), so quic-go takes its out-of-band path, as on a raw
// socket; it has ReadBatch too, which quic-go reads with instead of
// putting x/net's ipv4.PacketConn over SyscallConn (whose Read batchconn
// refuses). A transfer then shows in the conns' Stats that quic-go's
// packets went through batchconn in batches both ways, its segmented
// (GSO) messages leaving as such.
func TestNoBypass(t *testing.T) {
	var pc net.PacketConn = itest.ListenUDP(t, itest.Batchconn)
	if _, ok := pc.(quic.OOBCapablePacketConn); !ok {
		t.Error("batchconn is not a quic.OOBCapablePacketConn: quic-go would move one packet per ReadFrom and WriteTo, without GSO, ECN or packet info")
	}
	if _, ok := pc.(interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	}); !ok {
		t.Error("batchconn has no ReadBatch: quic-go would read through ipv4.NewPacketConn on its SyscallConn, past the ring")
	}
	sc, ok := pc.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		t.Fatal("batchconn has no SyscallConn: quic-go cannot set don't-fragment, and keeps to 1280-byte packets")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Read(func(uintptr) bool { return true }); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyscallConn().Read = %v, want errors.ErrUnsupported: a raw read would take the ring's datagrams", err)
	}
	if err := rc.Write(func(uintptr) bool { return true }); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyscallConn().Write = %v, want errors.ErrUnsupported: a raw write would pass the queue", err)
	}
	if _, ok := pc.(interface{ SetWriteBuffer(int) error }); !ok {
		t.Error("batchconn has no SetWriteBuffer: quic-go cannot raise the send buffer")
	}
	// quic-go sets don't-fragment and turns on receiving the TOS byte
	// (ECN) through Control, as on plain.
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	srvTLS, _ := itest.TLS(t)
	if _, err := tr.Listen(srvTLS, quicConfig()); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name string
		opt  int
		want func(int) bool
		what string
	}{
		{"IP_MTU_DISCOVER", unix.IP_MTU_DISCOVER, func(v int) bool { return v == unix.IP_PMTUDISC_PROBE || v == unix.IP_PMTUDISC_DO }, "don't-fragment set"},
		{"IP_RECVTOS", unix.IP_RECVTOS, func(v int) bool { return v == 1 }, "1: quic-go reads ECN marks"},
	} {
		var v int
		if cerr := rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, o.opt) }); cerr != nil {
			err = cerr
		}
		if err != nil || !o.want(v) {
			t.Errorf("%s = %d, %v after quic-go took the conn: want %s", o.name, v, err, o.what)
		}
	}

	// 8 MB each way: quic-go's packets go through the ring and the queue,
	// its segmented messages as segmented messages. A gsoCount between
	// quic-go and each batchconn counts the datagrams quic-go wrote in
	// segmented (UDP_SEGMENT) messages. On loopback the kernel hands a
	// segmented message whole to a receiver with UDP_GRO on and segments
	// nothing else together, so that the datagrams the other side's
	// batchconn read coalesced (OffloadReceived) left in segmented
	// messages. batchconn merges no caller's messages and splits none the
	// kernel takes: it sends as segments (OffloadSent) exactly the
	// datagrams quic-go cut.
	const size = 8 << 20
	var shims []*gsoCount
	p := newPair(t, func(uc *net.UDPConn) net.PacketConn {
		g := &gsoCount{PacketConn: batchconn.New(uc, nil)}
		shims = append(shims, g)
		return g
	})
	r, ok := bulk(t, p, size, quicConfig())
	if !ok {
		return
	}
	checkThrough(t, size, r.srv, r.cli, &r.srvQ, &r.cliQ)
	sides := []struct {
		side       string
		st, peerSt batchconn.Stats
		shim       *gsoCount
	}{{"server", r.srv, r.cli, shims[0]}, {"client", r.cli, r.srv, shims[1]}}
	for _, s := range sides {
		checkBatched(t, s.side, s.st)
		msgs, segs := s.shim.msgs.Load(), s.shim.segs.Load()
		t.Logf("%s: quic-go wrote %d segmented messages of %d datagrams (of %d written); batchconn counted %d sent as segments (OffloadSent); the peer read %d coalesced",
			s.side, msgs, segs, s.st.DatagramsWritten, s.st.OffloadSent, s.peerSt.OffloadReceived)
		if segs == 0 {
			t.Errorf("%s: quic-go wrote no segmented message to batchconn: GSO unused", s.side)
		}
		if s.st.OffloadSent > segs {
			t.Errorf("%s: batchconn sent %d datagrams as segments, more than the %d quic-go cut: it merged quic-go's messages", s.side, s.st.OffloadSent, segs)
		} else if s.st.OffloadSent < segs && s.st.OffloadFallbacks == 0 {
			// (A kernel of 7.0-rc1 to 7.1.4 would send quic-go's runs of
			// one length one datagram a message: not this test's.)
			t.Errorf("%s: batchconn sent %d datagrams as segments, fewer than the %d quic-go cut, with no offload refused", s.side, s.st.OffloadSent, segs)
		}
		if s.peerSt.OffloadReceived == 0 || s.peerSt.OffloadReceived > segs {
			t.Errorf("%s: quic-go cut %d datagrams into segmented messages and the peer read %d coalesced: want some, and no more", s.side, segs, s.peerSt.OffloadReceived)
		}
	}
}

// gsoCount is a batchconn as quic-go sees it (the same methods, promoted),
// counting the segmented messages quic-go writes: those with a
// UDP_SEGMENT control message that cut the payload in two or more.
type gsoCount struct {
	*batchconn.PacketConn
	msgs, segs atomic.Uint64
}

func (g *gsoCount) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if seg := segmentSize(oob); seg > 0 && len(b) > seg {
		g.msgs.Add(1)
		g.segs.Add(uint64((len(b) + seg - 1) / seg))
	}
	return g.PacketConn.WriteMsgUDP(b, oob, addr)
}

// segmentSize returns the UDP_SEGMENT size among the control messages
// oob, 0 where there is none.
func segmentSize(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_SEGMENT && len(m.Data) >= 2 {
			return int(binary.NativeEndian.Uint16(m.Data))
		}
	}
	return 0
}

// checkBatched requires that a conn that received and sent a bulk
// transfer did so in batches: fewer read calls than datagrams read, fewer
// send calls than datagrams written.
func checkBatched(t *testing.T, side string, s batchconn.Stats) {
	t.Helper()
	if s.ReadCalls == 0 || s.ReadCalls >= s.DatagramsRead {
		t.Errorf("%s: %d datagrams read in %d calls: want batches", side, s.DatagramsRead, s.ReadCalls)
	}
	if s.WriteCalls == 0 || s.WriteCalls >= s.DatagramsWritten {
		t.Errorf("%s: %d datagrams written in %d calls: want batches", side, s.DatagramsWritten, s.WriteCalls)
	}
	t.Logf("%s: %d datagrams read in %d calls (%.1f a call, %d coalesced by GRO); %d written in %d calls (%.1f a call, %d as segments)",
		side, s.DatagramsRead, s.ReadCalls, float64(s.DatagramsRead)/float64(max(s.ReadCalls, 1)), s.OffloadReceived,
		s.DatagramsWritten, s.WriteCalls, float64(s.DatagramsWritten)/float64(max(s.WriteCalls, 1)), s.OffloadSent)
}

// TestHTTP3 serves HTTP/3 with quic-go's http3 package: eight concurrent
// requests over one connection, GETs of generated bodies and POSTs that
// the server echoes, every body checked.
func TestHTTP3(t *testing.T) {
	for _, kind := range itest.Kinds {
		t.Run(kind.Name, func(t *testing.T) { testHTTP3(t, kind) })
	}
}

func testHTTP3(t *testing.T, kind itest.Kind) {
	p := newPair(t, kind.Wrap)
	srvTLS, cliTLS := itest.TLS(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blob", func(w http.ResponseWriter, r *http.Request) {
		seed, err1 := strconv.ParseUint(r.FormValue("seed"), 10, 64)
		n, err2 := strconv.ParseInt(r.FormValue("n"), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		itest.WriteStream(w, seed, n, 32<<10)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	srv := &http3.Server{Handler: mux, QUICConfig: quicConfig()}
	ln, err := p.srv.ListenEarly(http3.ConfigureTLSConfig(srvTLS), quicConfig())
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeListener(ln) }()

	var dialMu sync.Mutex
	var conns []*quic.Conn
	rt := &http3.Transport{
		TLSClientConfig: cliTLS,
		QUICConfig:      quicConfig(),
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			conn, err := p.cli.DialEarly(ctx, p.srvPC.LocalAddr(), tlsCfg, cfg)
			if err == nil {
				dialMu.Lock()
				conns = append(conns, conn)
				dialMu.Unlock()
			}
			return conn, err
		},
	}
	client := &http.Client{Transport: rt, Timeout: 60 * time.Second}
	url := "https://localhost:" + strconv.Itoa(p.srvPC.LocalAddr().(*net.UDPAddr).Port)

	const requests = 8
	var total int64
	errc := make(chan error, requests)
	for i := range requests {
		seed := uint64(100 + i)
		n := int64(i+1) * 200_000
		total += n
		go func() {
			errc <- func() error {
				var resp *http.Response
				var err error
				if i%2 == 0 {
					resp, err = client.Get(fmt.Sprintf("%s/blob?seed=%d&n=%d", url, seed, n))
				} else {
					pr, pw := io.Pipe()
					defer pr.Close() // ends the writer if the request failed
					go func() { pw.CloseWithError(itest.WriteStream(pw, seed, n, 32<<10)) }()
					resp, err = client.Post(url+"/echo", "application/octet-stream", pr)
				}
				if err != nil {
					return fmt.Errorf("request %d: %w", i, err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 {
					return fmt.Errorf("request %d: %s %s", i, resp.Proto, resp.Status)
				}
				if err := itest.CheckStream(resp.Body, seed, n); err != nil {
					return fmt.Errorf("request %d: body: %w", i, err)
				}
				return nil
			}()
		}()
	}
	for range requests {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if err := rt.Close(); err != nil {
		t.Errorf("client transport Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("server Close: %v", err)
	}
	ln.Close()
	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
			t.Errorf("ServeListener returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("ServeListener still running 10s after Close")
	}
	if err := p.close(); err != nil {
		t.Error(err)
	}
	if len(conns) != 1 {
		t.Errorf("the requests went over %d connections, want 1", len(conns))
	}
	if st, ok := itest.Stats(p.srvPC); ok && !t.Failed() {
		cli, _ := itest.Stats(p.cliPC)
		cliQ := conns[0].ConnectionStats()
		// The POSTs' bodies go up, the echoes and blobs come down: a
		// third of the total each way at least.
		checkThrough(t, total/3, st, cli, nil, &cliQ)
	}
}
