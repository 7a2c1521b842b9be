package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/batchconn/batchconn"
)

const (
	readBuffer    = 8 << 20 // asked of every measured receive queue
	pingSize      = 64      // the pingpong request
	maxRoundTrips = 20000   // per pingpong run
	minSize       = 8       // room for the sequence number
	maxPayload    = 65507   // the largest UDP payload over IPv4
	maxDatagram   = 65536   // receive buffers: room for any datagram
	batchSize     = 64      // batchconn's default Config.BatchSize

	// grace is the longest a run waits for the network beyond its
	// duration: for a receiver to read what is queued, for a reply, for a
	// blocked write.
	grace = 2 * time.Second

	// checkEvery is how many writes the send loops make between two reads
	// of the clock.
	checkEvery = 64

	// recvFeeders is how many senders, each a goroutine with a socket,
	// keep the recv scenario's receiver busy.
	recvFeeders = 2
)

// mode is the conn under test: plain *net.UDPConn, or batchconn over one.
type mode string

const (
	modePlain mode = "plain"
	modeBatch mode = "batchconn"
)

// modes in the order each round runs them.
var modes = []mode{modePlain, modeBatch}

// scenario is one measurement, run once per mode, round and size.
type scenario struct {
	name      string
	fixedSize int // the one payload size it uses; 0: each of -sizes
	run       func(m mode, size int, d time.Duration) sample
}

var allScenarios = []scenario{
	{name: "send", run: runSend},
	{name: "recv", run: runRecv},
	{name: "pingpong", fixedSize: pingSize, run: runPingPong},
}

// sample is the outcome of one run.
type sample struct {
	count   uint64        // datagrams sent (send), read (recv), round trips (pingpong)
	elapsed time.Duration // the time count took

	// For send and recv: datagrams sent toward the receiver, and those
	// that reached it (send: it read them; recv: they found room in its
	// queue). drops is the kernel's count of datagrams dropped at the
	// receiver's full queue, where dropsKnown.
	offered, arrived, drops uint64
	dropsKnown              bool

	p50, p99 time.Duration // pingpong round trips

	stats    *batchconn.Stats // the conn under test's, in batchconn mode
	problems []string         // anything that should not have happened
}

func (s *sample) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// rate is count per second.
func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.count) / s.elapsed.Seconds()
}

// describe is the progress line's summary of a finished run.
func (sc scenario) describe(s sample, size int) string {
	switch {
	case len(s.problems) > 0:
		return fmt.Sprintf("%d problem(s): %s", len(s.problems), s.problems[0])
	case sc.name == "pingpong":
		return fmt.Sprintf("%.0f round trips/s, p50 %.1f µs", s.rate(), micros(s.p50))
	default:
		return fmt.Sprintf("%.0f datagrams/s, %.1f MB/s", s.rate(), s.rate()*float64(size)/1e6)
	}
}

// runSend measures the conn under test as a sender: one goroutine writes
// to a plain receiver as fast as WriteTo returns.
func runSend(m mode, size int, d time.Duration) (s sample) {
	rx, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	if err := rx.SetReadBuffer(readBuffer); err != nil {
		s.problem("SetReadBuffer: %v", err)
	}
	sk := startSink(rx, size)
	defer sk.close() // a no-op once settle closed it

	txc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	tx := wrap(txc, m)
	start := time.Now()
	end := start.Add(d)
	if err := tx.SetWriteDeadline(end.Add(grace)); err != nil { // bounds Close's flush too
		s.problem("SetWriteDeadline: %v", err)
	}
	sent, err := blast(tx, rx.LocalAddr(), size, 0, end, nil)
	if err != nil {
		s.problem("WriteTo after %d datagrams: %v", sent, err)
	}
	if err := tx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.count, s.elapsed, s.offered = sent, time.Since(start), sent
	s.stats = statsOf(tx)

	s.arrived, s.drops, s.dropsKnown = sk.settle()
	sk.check(&s)
	checkSent(&s)
	return s
}

// checkSent compares what a batchconn sender says it sent with what its
// caller handed it, and what arrived with what the kernel dropped.
func checkSent(s *sample) {
	if st := s.stats; st != nil {
		if st.DatagramsWritten != s.offered || st.WriteFailures != 0 {
			s.problem("WriteTo accepted %d datagrams, Stats says %d written, %d failed",
				s.offered, st.DatagramsWritten, st.WriteFailures)
		}
	}
	if !s.dropsKnown {
		return
	}
	if lost := int64(s.offered) - int64(s.arrived) - int64(s.drops); lost != 0 {
		s.problem("%d sent, %d arrived, %d dropped by the kernel: %d unaccounted for",
			s.offered, s.arrived, s.drops, lost)
	}
}

// runRecv measures the conn under test as a receiver: one goroutine reads
// with ReadFrom for d while feeders, batchconn senders of their own, keep
// its queue full.
func runRecv(m mode, size int, d time.Duration) (s sample) {
	rxc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	if err := rxc.SetReadBuffer(readBuffer); err != nil {
		s.problem("SetReadBuffer: %v", err)
	}
	rx := wrap(rxc, m)
	defer rx.Close()

	feeders := make([]*feeder, recvFeeders)
	for i := range feeders {
		txc, err := listen()
		if err != nil {
			s.problem("listen: %v", err)
			stopFeeders(feeders[:i], &s)
			return s
		}
		feeders[i] = startFeeder(batchconn.New(txc, nil), rxc.LocalAddr(), size, uint64(i), d+grace)
	}
	var ord order
	s.count, s.elapsed, err = readFor(rx, &ord, size, d)
	if err != nil {
		s.problem("ReadFrom after %d datagrams: %v", s.count, err)
	}
	s.offered = stopFeeders(feeders, &s)
	_, s.drops, s.dropsKnown = udpSocket(rxc.LocalAddr().(*net.UDPAddr).Port)
	s.arrived = s.offered - min(s.drops, s.offered)
	if err := rx.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	s.stats = statsOf(rx)
	checkRead(&s)
	ord.check(&s)
	return s
}

// checkRead compares what a batchconn receiver returned with what it says
// it received: the difference is what its ring still held, at most a
// batch.
func checkRead(s *sample) {
	if st := s.stats; st != nil && (st.DatagramsRead < s.count || st.DatagramsRead-s.count > batchSize) {
		s.problem("ReadFrom returned %d datagrams, Stats says %d received: the ring cannot hold %d",
			s.count, st.DatagramsRead, int64(st.DatagramsRead)-int64(s.count))
	}
}

// readFor reads from pc until d has passed, and returns how many datagrams
// it read.
func readFor(pc net.PacketConn, ord *order, size int, d time.Duration) (uint64, time.Duration, error) {
	buf := make([]byte, maxDatagram)
	start := time.Now()
	if err := pc.SetReadDeadline(start.Add(d)); err != nil {
		return 0, 0, err
	}
	var count uint64
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			return count, time.Since(start), err
		}
		ord.see(buf[:n], size)
		count++
	}
}

// runPingPong measures the conn under test as an echo server, one request
// in flight at a time from a plain client.
func runPingPong(m mode, size int, d time.Duration) (s sample) {
	srvc, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	srv := wrap(srvc, m)
	defer srv.Close()
	if err := srv.SetReadDeadline(time.Now().Add(d + grace)); err != nil {
		s.problem("SetReadDeadline: %v", err)
	}
	echoed := make(chan error, 1)
	go func() { echoed <- echo(srv) }()

	cl, err := listen()
	if err != nil {
		s.problem("listen: %v", err)
		return s
	}
	defer cl.Close()
	rtts, elapsed, err := pingFor(cl, addrPort(srvc), size, d)
	if err != nil {
		s.problem("client after %d round trips: %v", len(rtts), err)
	}
	s.count, s.elapsed = uint64(len(rtts)), elapsed
	s.p50, s.p99 = percentile(rtts, 0.50), percentile(rtts, 0.99)

	if err := srv.Close(); err != nil {
		s.problem("Close: %v", err)
	}
	if err := <-echoed; err != nil {
		s.problem("server: %v", err)
	}
	s.stats = statsOf(srv)
	return s
}

// echo sends every datagram back to its sender until pc is closed.
func echo(pc net.PacketConn) error {
	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if _, err := pc.WriteTo(buf[:n], addr); err != nil {
			return err
		}
	}
}

// pingFor sends one request at a time to srv and times its reply, for d
// or maxRoundTrips round trips, whichever ends first.
func pingFor(cl *net.UDPConn, srv netip.AddrPort, size int, d time.Duration) ([]time.Duration, time.Duration, error) {
	req := make([]byte, size)
	reply := make([]byte, maxDatagram)
	rtts := make([]time.Duration, 0, maxRoundTrips)
	start := time.Now()
	if err := cl.SetReadDeadline(start.Add(d + grace)); err != nil {
		return nil, 0, err
	}
	for seq := uint64(0); seq < maxRoundTrips && time.Since(start) < d; seq++ {
		stamp(req, seq)
		t0 := time.Now()
		if _, err := cl.WriteToUDPAddrPort(req, srv); err != nil {
			return rtts, time.Since(start), err
		}
		n, from, err := cl.ReadFromUDPAddrPort(reply)
		rtt := time.Since(t0)
		if err != nil {
			return rtts, time.Since(start), err
		}
		if from.Addr().Unmap() != srv.Addr() || from.Port() != srv.Port() || n != size || binary.BigEndian.Uint64(reply) != seq {
			return rtts, time.Since(start), fmt.Errorf("request %d: reply of %d bytes from %v is not its echo", seq, n, from)
		}
		rtts = append(rtts, rtt)
	}
	return rtts, time.Since(start), nil
}

// percentile returns the p-quantile of ds (nearest rank); it sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// blast writes datagrams of size numbered 0, 1, ... in stream to dst as
// fast as pc takes them, until end or until quit is set, and returns how
// many pc accepted.
func blast(pc net.PacketConn, dst net.Addr, size int, stream uint64, end time.Time, quit *atomic.Bool) (uint64, error) {
	buf := make([]byte, size)
	var seq uint64
	for ; quit == nil || !quit.Load(); seq++ {
		if seq%checkEvery == 0 && !time.Now().Before(end) {
			break
		}
		stamp(buf, stream<<streamShift|seq)
		if _, err := pc.WriteTo(buf, dst); err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// feeder keeps a receiver's queue full from its own goroutine.
type feeder struct {
	quit atomic.Bool
	done chan struct{}
	sent uint64
	err  error
}

// startFeeder starts blasting from pc to dst, then closes pc; it stops by
// itself after limit, or at stopFeeders.
func startFeeder(pc net.PacketConn, dst net.Addr, size int, stream uint64, limit time.Duration) *feeder {
	f := &feeder{done: make(chan struct{})}
	end := time.Now().Add(limit)
	go func() {
		defer close(f.done)
		var errs []error
		if err := pc.SetWriteDeadline(end.Add(grace)); err != nil {
			errs = append(errs, err)
		}
		sent, err := blast(pc, dst, size, stream, end, &f.quit)
		errs = append(errs, err, pc.Close())
		f.sent, f.err = sent, errors.Join(errs...)
	}()
	return f
}

// stopFeeders stops the feeders, adds their errors to s and returns how
// many datagrams they sent.
func stopFeeders(fs []*feeder, s *sample) uint64 {
	for _, f := range fs {
		f.quit.Store(true)
	}
	var sent uint64
	for _, f := range fs {
		<-f.done
		if f.err != nil {
			s.problem("sender: %v", f.err)
		}
		sent += f.sent
	}
	return sent
}

// sink drains a plain receiver from its own goroutine, counting and
// checking what it reads.
type sink struct {
	conn    *net.UDPConn
	size    int
	n       atomic.Uint64 // datagrams read so far
	ord     order
	err     error // the read error that stopped it, other than Close
	done    chan struct{}
	closed  bool
	unquiet bool // settle gave up waiting for the queue to empty
}

func startSink(conn *net.UDPConn, size int) *sink {
	sk := &sink{conn: conn, size: size, done: make(chan struct{})}
	go sk.drain()
	return sk
}

func (sk *sink) drain() {
	defer close(sk.done)
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := sk.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				sk.err = err
			}
			return
		}
		sk.ord.see(buf[:n], sk.size)
		sk.n.Add(1)
	}
}

// settle waits, once the sender is done, until the receiver has read all
// that its queue holds, then closes it. It returns how many datagrams the
// receiver read, and how many the kernel dropped at its queue if known.
func (sk *sink) settle() (read, drops uint64, dropsKnown bool) {
	port := sk.conn.LocalAddr().(*net.UDPAddr).Port
	last, still := sk.n.Load(), 0
	for end := time.Now().Add(grace); still < 3; {
		if !time.Now().Before(end) {
			sk.unquiet = true
			break
		}
		time.Sleep(5 * time.Millisecond)
		queued, _, ok := udpSocket(port)
		if n := sk.n.Load(); n != last || ok && queued > 0 {
			last, still = n, 0
			continue
		}
		still++
	}
	_, drops, dropsKnown = udpSocket(port)
	sk.close()
	return sk.n.Load(), drops, dropsKnown
}

// close closes the receiver and waits for its goroutine.
func (sk *sink) close() {
	if !sk.closed {
		sk.closed = true
		sk.conn.Close()
		<-sk.done
	}
}

// check adds the receiver's problems to s.
func (sk *sink) check(s *sample) {
	if sk.err != nil {
		s.problem("receiver: %v", sk.err)
	}
	if sk.unquiet {
		s.problem("receiver still reading %v after the sender closed", grace)
	}
	sk.ord.check(s)
}

// order checks the datagrams one receiver reads: each of the size sent,
// intact, its sequence number above the last one's from the same sender
// (stream). Loopback keeps one sender's datagrams in order, so a repeat or
// a step back is a bug; a gap is a drop.
type order struct {
	next                       [maxStreams]uint64 // each stream's lowest sequence number still expected
	backwards, resize, corrupt uint64             // datagrams read wrong, by the way they were
}

// A datagram's sequence number carries its sender's stream in its top
// byte, so that one receiver can check several senders.
const (
	streamShift = 56
	maxStreams  = 4
)

// stamp writes seq into a datagram: big-endian in its first 8 bytes, and
// its low byte in the last one, so that a datagram cut or spliced shows.
func stamp(p []byte, seq uint64) {
	binary.BigEndian.PutUint64(p, seq)
	p[len(p)-1] = byte(seq) // the same byte when len(p) is 8
}

func (o *order) see(p []byte, size int) {
	if len(p) != size {
		o.resize++
		return
	}
	seq := binary.BigEndian.Uint64(p)
	stream := seq >> streamShift
	switch {
	case p[len(p)-1] != byte(seq) || stream >= maxStreams:
		o.corrupt++
	case seq < o.next[stream]:
		o.backwards++
	default:
		o.next[stream] = seq + 1
	}
}

func (o *order) check(s *sample) {
	if o.resize > 0 {
		s.problem("%d datagrams read with the wrong size", o.resize)
	}
	if o.backwards > 0 {
		s.problem("%d datagrams read out of order or twice", o.backwards)
	}
	if o.corrupt > 0 {
		s.problem("%d datagrams read with a corrupted payload", o.corrupt)
	}
}

// listen opens a plain IPv4 UDP socket on a free loopback port.
func listen() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}

// addrPort is uc's local address, IPv4 unmapped.
func addrPort(uc *net.UDPConn) netip.AddrPort {
	ap := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// wrap returns the conn under test for m.
func wrap(uc *net.UDPConn, m mode) net.PacketConn {
	if m == modeBatch {
		return batchconn.New(uc, nil)
	}
	return uc
}

// statsOf returns pc's batchconn counters, or nil for a plain conn.
func statsOf(pc net.PacketConn) *batchconn.Stats {
	if bc, ok := pc.(*batchconn.PacketConn); ok {
		st := bc.Stats()
		return &st
	}
	return nil
}
