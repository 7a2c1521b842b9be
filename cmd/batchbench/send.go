package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/batchconn/batchconn"
)

const (
	send16Dests = 16 // destinations send16 and fanout write to in turn
	checkEvery  = 64 // writes between two looks at the clock
)

func runSend(p params) sample   { return runSendTo(p, 1, false, plainSinks) }
func runSend16(p params) sample { return runSendTo(p, send16Dests, true, plainSinks) }
func runFanout(p params) sample { return runSendTo(p, send16Dests, true, batchSinks) }

// runSendTo writes as fast as the conn under test takes datagrams, to
// ndst receivers in turn, for the duration, then closes it, which sends
// what batchconn still queues. It counts what the receivers read, until
// the last; with -target, what the kernel took, until Close returned.
func runSendTo(p params, ndst int, byAddrPort bool, kind sinkKind) (s sample) {
	var sk *sinks
	var dsts []netip.AddrPort
	var err error
	if p.remote != nil {
		dsts = p.remote.sinkAddrs(ndst)
	} else {
		if sk, err = startSinks(ndst, p.size, kind); err != nil {
			s.problem("%v", err)
			return s
		}
		defer sk.close() // a no-op once settled
		dsts = sk.addrs
	}
	txc, err := p.listen()
	if s.problemIf("listen", err) {
		return s
	}
	tx := wrap(txc, p.mode)
	send := func(end time.Time) (uint64, error) { return blast(tx, dsts, byAddrPort, p.size, 0, end, nil) }
	if kind == timedSinks {
		send = func(end time.Time) (uint64, error) { return trickle(tx, net.UDPAddrFromAddrPort(dsts[0]), p.size, end) }
	} else if p.mode.loop() {
		if send, err = loopSender(p.mode, txc, p.size, dsts); err != nil {
			txc.Close()
			s.problem("%v", err)
			return s
		}
	}
	stop := meter()
	start := time.Now()
	s.problemIf("SetWriteDeadline", tx.SetWriteDeadline(start.Add(p.duration+grace))) // bounds Close's flush too
	s.offered, err = send(start.Add(p.duration))
	s.problemIf(fmt.Sprintf("write after %d datagrams", s.offered), err)
	s.problemIf("Close", tx.Close())
	s.sendTime, s.stats = time.Since(start), statsOf(tx)
	if sk == nil || kind == timedSinks { // -target: nothing counts what the far end got
		stop(&s, s.offered) // lone: before settle, whose looks at the kernel's queues allocate
		s.count, s.elapsed, s.sentOnly = s.offered, s.sendTime, sk == nil
		if sk == nil {
			return s
		}
	}
	s.arrived, s.drops, s.dropsKnown = sk.settle()
	s.arrivals, s.coalescedDrops = true, kind == batchSinks
	if kind == timedSinks {
		delays := sk.list[0].delays
		s.p50, s.p99 = percentile(delays, 0.50), percentile(delays, 0.99)
	} else {
		stop(&s, s.arrived)
		s.count, s.elapsed = s.arrived, sk.lastRead().Sub(start)
	}
	sk.check(&s)
	checkSent(&s)
	return s
}

// checkSent checks that every datagram (request) sent arrived (was
// answered) or was dropped by the kernel, whose count is only a lower
// bound where a receiver with GRO had a run dropped as one (coalescedDrops).
func checkSent(s *sample) {
	if !s.arrivals || !s.dropsKnown {
		return
	}
	if lost := int64(s.offered) - int64(s.arrived) - int64(s.drops); lost < 0 || lost > 0 && !s.coalescedDrops {
		s.problem("%d sent, %d arrived, %d dropped by the kernel: %d unaccounted for", s.offered, s.arrived, s.drops, lost)
	}
}

// blast writes datagrams of size numbered 0, 1, ... in stream to dsts in
// turn (through WriteToUDPAddrPort where byAddrPort) as fast as pc takes
// them, until end or quit, and returns how many.
func blast(pc net.PacketConn, dsts []netip.AddrPort, byAddrPort bool, size int, stream uint64, end time.Time, quit *atomic.Bool) (uint64, error) {
	apw, ok := pc.(addrPortWriter)
	if byAddrPort && !ok {
		return 0, errors.New("the conn has no WriteToUDPAddrPort")
	}
	var addrs []net.Addr
	for _, ap := range dsts {
		addrs = append(addrs, net.UDPAddrFromAddrPort(ap))
	}
	buf := make([]byte, size)
	n := uint64(len(dsts))
	var seq uint64
	for ; quit == nil || !quit.Load(); seq++ {
		if seq%checkEvery == 0 && !time.Now().Before(end) {
			break
		}
		stamp(buf, stream<<streamShift|seq)
		var err error
		if byAddrPort {
			_, err = apw.WriteToUDPAddrPort(buf, dsts[seq%n])
		} else {
			_, err = pc.WriteTo(buf, addrs[seq%n])
		}
		if err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// plainSinks read with *net.UDPConn, as most programs do. batchSinks read
// through batchconn, as batching peers do, GRO taking GSO runs whole: on
// two cores, 16 receivers paying a system call a datagram would measure
// themselves. timedSinks note each datagram's delay (lone).
type sinkKind int

const (
	plainSinks sinkKind = iota
	batchSinks
	timedSinks
)

// sinks are receivers, each drained by a goroutine of its own.
type sinks struct {
	list    []*sink
	addrs   []netip.AddrPort
	unquiet bool // settle gave up waiting for the queues to empty
}

func startSinks(n, size int, kind sinkKind) (*sinks, error) {
	sk := &sinks{}
	for range n {
		uc, err := listen()
		if err == nil {
			if err = uc.SetReadBuffer(readBuffer); err != nil {
				uc.Close()
			}
		}
		if err != nil {
			sk.close()
			return nil, fmt.Errorf("receiver: %w", err)
		}
		s := &sink{conn: uc, rd: uc, size: size, done: make(chan struct{}), timed: kind == timedSinks}
		if kind == batchSinks {
			s.rd = batchconn.New(uc, nil)
		}
		if s.timed {
			s.delays = make([]time.Duration, 0, 1<<16) // so that lone's receiver allocates nothing
		}
		go s.drain()
		sk.list, sk.addrs = append(sk.list, s), append(sk.addrs, addrPort(uc))
	}
	return sk, nil
}

func (sk *sinks) lastRead() time.Time {
	var last int64
	for _, s := range sk.list {
		last = max(last, s.last.Load())
	}
	return epoch.Add(time.Duration(last))
}

func (sk *sinks) read() (n uint64) {
	for _, s := range sk.list {
		n += s.n.Load()
	}
	return n
}

// settle waits until the receivers have read what their queues hold,
// then closes them, and returns what they read and the kernel dropped.
func (sk *sinks) settle() (read, drops uint64, dropsKnown bool) {
	var ports []int
	for _, s := range sk.list {
		ports = append(ports, port(s.conn))
	}
	last, still := sk.read(), 0
	for end := time.Now().Add(grace); still < 3; still++ {
		if !time.Now().Before(end) {
			sk.unquiet = true
			break
		}
		time.Sleep(5 * time.Millisecond)
		q, _, _ := udpQueues(ports...)
		if n := sk.read(); n != last || q > 0 {
			last, still = n, -1
		}
	}
	_, drops, dropsKnown = udpQueues(ports...)
	sk.close()
	return sk.read(), drops, dropsKnown
}

func (sk *sinks) close() {
	for _, s := range sk.list {
		if !s.closed {
			s.closed = true
			s.rd.Close()
			<-s.done
		}
	}
}

func (sk *sinks) check(s *sample) {
	for _, k := range sk.list {
		if k.err != nil {
			s.problem("receiver: %v", k.err)
		}
		k.ord.check(s)
	}
	if sk.unquiet {
		s.problem("receivers still reading %v after the sender closed", grace)
	}
}

// sink drains a receiver from its own goroutine.
type sink struct {
	conn *net.UDPConn
	rd   interface {
		addrPortReader
		io.Closer
	}
	size   int
	n      atomic.Uint64 // datagrams read so far
	last   atomic.Int64  // when the last was read, since epoch
	ord    order
	timed  bool
	delays []time.Duration // timedSinks
	err    error           // the read error that stopped it, other than Close
	done   chan struct{}
	closed bool
}

func (s *sink) drain() {
	defer close(s.done)
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := s.rd.ReadFromUDPAddrPort(buf)
		at := time.Since(epoch)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.err = err
			}
			return
		}
		s.last.Store(int64(at))
		s.ord.see(buf[:n], s.size)
		if s.timed && n == s.size {
			s.delays = append(s.delays, at-time.Duration(binary.BigEndian.Uint64(buf[8:])))
		}
		s.n.Add(1)
	}
}
