package batchconn

import (
	"net"
	"testing"
	"time"
)

// FuzzSequence decodes its input into a sequence of calls (writes of some
// size to the peer or to a bad address, reads after the peer sent
// something, Flush, deadlines in the past, the future or none, Close),
// runs it on plain and on every kind of batchconn (runDiff), and requires
// the same observations: n, bytes, sender, error traits, and what the peer
// receives. No call can block: a read is made only when a datagram is
// known to be waiting (loopback delivers within the send) or a deadline
// has passed, and the peer reads only datagrams known to be on their way.

// Opcodes: an input is a sequence of (opcode, argument) byte pairs.
const (
	fzWrite    = iota // WriteTo the peer, size fzSizes[arg]; WriteToUDP where arg >= 128
	fzWriteAP         // WriteToUDPAddrPort the peer, size fzSizes[arg]
	fzWriteBad        // WriteTo a bad address fzBadAddrs[arg]
	fzPeerSend        // the peer sends size fzSizes[arg] to the conn
	fzRead            // ReadFrom with buffer fzBufs[arg], when a datagram is waiting; ReadFromUDP where arg >= 128
	fzReadAP          // ReadFromUDPAddrPort likewise
	fzFlush           // Flush (batchconn; nothing on plain)
	fzDrain           // Flush, and the peer reads what was written
	fzDeadline        // Set{,Read,Write}Deadline(arg/4%3) to none, past, an hour ahead or year 9999 (arg%4)
	fzClose           // Close
	fzOps
)

var (
	fzSizes = []int{0, 1, 2, 7, 8, 100, 500, 1000, 1200, 1200, 1200, 1400, 1472, 1500, 9000, 32768, maxPayload4, maxPayload4 + 1}
	fzBufs  = []int{-1, 0, 1, 8, 100, 1200, 1500, 65535}
)

// fzBadAddrs are destinations plain refuses at once, whatever the kernel's
// routes: the same everywhere.
var fzBadAddrs = []func(e *env) net.Addr{
	func(*env) net.Addr { return nil },
	func(*env) net.Addr { return (*net.UDPAddr)(nil) },
	func(e *env) net.Addr { return &net.TCPAddr{IP: e.peerAddr().IP, Port: e.peerAddr().Port} },
	func(e *env) net.Addr { return &net.UDPAddr{IP: net.IPv6loopback, Port: e.peerAddr().Port} },
	func(e *env) net.Addr { return &net.UDPAddr{IP: e.peerAddr().IP, Port: 0} },
	func(e *env) net.Addr { return &net.UDPAddr{IP: e.peerAddr().IP, Port: 70000} },
	func(e *env) net.Addr { return &net.UDPAddr{IP: net.IP{1, 2, 3}, Port: e.peerAddr().Port} },
	func(e *env) net.Addr { return &net.UDPAddr{IP: net.IPv4bcast, Port: e.peerAddr().Port} },
}

// Budgets keep every datagram in flight well inside a default receive
// buffer (about 208 KiB of truesize), so that the kernel drops none: a
// datagram's cost is its size and a generous allowance for overhead.
const (
	fzBudget   = 96 << 10
	fzOverhead = 1 << 10
	fzMaxOps   = 64
)

type fzDeadlineState int

const (
	fzNone fzDeadlineState = iota
	fzPast
	fzFuture
	fzFarFuture // year 9999: no deadline at all, in effect
)

// fzModel is what the caller knows, the same on every kind: it decides
// which calls are made, never what they return.
type fzModel struct {
	closed     bool
	readDL     fzDeadlineState
	writeDL    fzDeadlineState
	in         []int // sizes of the datagrams the peer sent that the conn has not read
	inBytes    int
	outPending int // datagrams written to the peer that it has not read
	outBytes   int
}

func runSequence(e *env, ops []byte) {
	m := &fzModel{}
	for i := 0; i+1 < len(ops) && i/2 < fzMaxOps; i += 2 {
		op, arg := int(ops[i])%fzOps, int(ops[i+1])
		switch op {
		case fzWrite, fzWriteAP:
			size := fzSizes[arg%len(fzSizes)]
			ok := !m.closed && m.writeDL != fzPast && size <= maxPayload4
			if ok && m.outBytes+size+fzOverhead > fzBudget {
				if !fzPeerDrain(e, m) {
					continue // the peer cannot take it now
				}
			}
			p := seq(size)
			if size > 0 {
				p[0] = byte(i) // tells datagrams apart
			}
			if op == fzWrite && arg >= 128 {
				e.writeUDP(p, e.peerAddr())
			} else if op == fzWrite {
				e.write(p, e.peerAddr())
			} else {
				e.writeAddrPort(p, e.peerAddr().AddrPort())
			}
			if ok {
				m.outPending++
				m.outBytes += size + fzOverhead
			}
		case fzWriteBad:
			e.write([]byte("bad"), fzBadAddrs[arg%len(fzBadAddrs)](e))
		case fzPeerSend:
			size := fzSizes[arg%len(fzSizes)]
			if size > maxPayload4 || m.inBytes+size+fzOverhead > fzBudget {
				continue
			}
			p := seq(size)
			if size > 0 {
				p[0] = byte(i)
			}
			e.peerSend(p)
			if !m.closed { // to a closed conn's port: lost, by design
				m.in = append(m.in, size)
				m.inBytes += size + fzOverhead
			}
		case fzRead, fzReadAP:
			// Only a read that cannot wait: a datagram is there, or the
			// deadline has passed, or the conn is closed.
			if len(m.in) == 0 && m.readDL != fzPast && !m.closed {
				continue
			}
			size := fzBufs[arg%len(fzBufs)]
			if op == fzRead && arg >= 128 {
				e.readUDP(max(size, 0))
			} else if op == fzRead {
				e.read(size)
			} else {
				e.readAddrPort(max(size, 0))
			}
			if !m.closed && m.readDL != fzPast {
				m.inBytes -= m.in[0] + fzOverhead
				m.in = m.in[1:]
			}
		case fzFlush:
			if c, ok := e.conn.(*PacketConn); ok && !m.closed {
				err := c.Flush()
				if m.writeDL != fzPast && err != nil {
					e.t.Errorf("%s: Flush = %v, want nil", e.conn.LocalAddr(), err)
				}
			}
		case fzDrain:
			fzPeerDrain(e, m)
		case fzDeadline:
			var t time.Time
			state := fzDeadlineState(arg % 4)
			switch state {
			case fzPast:
				t = time.Now().Add(-time.Second)
			case fzFuture:
				t = time.Now().Add(time.Hour)
			case fzFarFuture:
				t = year9999
			}
			which := []string{"", "read", "write"}[(arg/4)%3]
			setDeadlines(e, which, t)
			if !m.closed {
				if which != "write" {
					m.readDL = state
				}
				if which != "read" {
					m.writeDL = state
				}
			}
		case fzClose:
			if m.writeDL == fzPast && !m.closed {
				// Close cannot send what a passed deadline holds back on
				// batchconn, where plain had sent it: by design.
				continue
			}
			e.logf("Close = %s", describe(e.conn.Close()))
			m.closed = true
		}
	}
	// The end: nothing written may be missing, nothing may come twice.
	if m.writeDL == fzPast && !m.closed {
		e.conn.SetWriteDeadline(time.Time{})
		m.writeDL = fzNone
	}
	fzPeerDrain(e, m)
	e.peerExpectNothingShort()
}

// fzPeerDrain sends what the conn queued and has the peer read every datagram
// written to it, logging each. It reports false where it cannot: a passed
// write deadline holds batchconn's queue back.
func fzPeerDrain(e *env, m *fzModel) bool {
	if m.outPending == 0 {
		return true
	}
	if m.writeDL == fzPast && !m.closed {
		return false
	}
	if c, ok := e.conn.(*PacketConn); ok && !m.closed {
		if err := c.Flush(); err != nil {
			e.t.Errorf("Flush before the peer reads = %v, want nil", err)
		}
	}
	for range m.outPending {
		e.peerRead()
	}
	m.outPending, m.outBytes = 0, 0
	return true
}

// peerExpectNothingShort is peerExpectNothing with a shorter wait: on
// loopback a datagram that was sent has arrived.
func (e *env) peerExpectNothingShort() {
	p := make([]byte, 70000)
	e.peer.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	if n, _, err := e.peer.ReadFrom(p); err == nil {
		e.logf("peer unexpectedly received %d %s", n, digest(p[:n]))
	}
}

// fzSeq builds an input from (opcode, argument) pairs.
func fzSeq(pairs ...int) []byte {
	b := make([]byte, len(pairs))
	for i, v := range pairs {
		b[i] = byte(v)
	}
	return b
}

func FuzzSequence(f *testing.F) {
	for _, s := range [][]byte{
		fzSeq(fzWrite, 5, fzDrain, 0),
		fzSeq(fzPeerSend, 5, fzRead, 7, fzPeerSend, 0, fzRead, 0),
		fzSeq(fzWrite, 8, fzWrite, 8, fzWrite, 8, fzWrite, 3, fzFlush, 0, fzDrain, 0),
		fzSeq(fzWrite, 8, fzWriteBad, 0, fzWriteBad, 2, fzWriteBad, 3, fzWriteBad, 4, fzWriteBad, 7, fzWrite, 1, fzDrain, 0),
		fzSeq(fzWrite, 16, fzWrite, 17, fzWriteAP, 17, fzWriteAP, 0, fzDrain, 0),
		fzSeq(fzPeerSend, 16, fzRead, 3, fzPeerSend, 16, fzReadAP, 7, fzPeerSend, 1, fzRead, 0, fzPeerSend, 2, fzRead, 1),
		// Passed deadlines, with datagrams queued and waiting. (Deadline
		// arguments: 4*which + state; which 0 both, 1 read, 2 write;
		// state 0 none, 1 past, 2 an hour ahead, 3 year 9999.)
		fzSeq(fzWrite, 5, fzWrite, 5, fzDeadline, 1, fzWrite, 5, fzPeerSend, 5, fzRead, 5, fzDeadline, 0, fzRead, 5, fzDrain, 0),
		fzSeq(fzPeerSend, 1, fzPeerSend, 2, fzRead, 3, fzDeadline, 5, fzRead, 3, fzDeadline, 4, fzRead, 3, fzRead, 3),
		fzSeq(fzWrite, 1, fzWrite, 2, fzDeadline, 9, fzWriteBad, 1, fzWriteBad, 2, fzFlush, 0, fzWrite, 3, fzDeadline, 8, fzDrain, 0),
		fzSeq(fzDeadline, 2, fzWrite, 6, fzPeerSend, 6, fzReadAP, 6, fzDeadline, 0),
		// Deadlines in year 9999: none, in effect.
		fzSeq(fzDeadline, 3, fzWrite, 6, fzPeerSend, 6, fzRead, 6, fzDeadline, 7, fzPeerSend, 1, fzReadAP, 6, fzDeadline, 11, fzWrite, 2, fzDrain, 0),
		// Close with datagrams queued and waiting, then use.
		fzSeq(fzWrite, 5, fzWrite, 6, fzPeerSend, 3, fzPeerSend, 4, fzRead, 5, fzClose, 0, fzRead, 5, fzWrite, 5, fzWriteBad, 0, fzDeadline, 0, fzClose, 0, fzDrain, 0),
		// WriteToUDP and ReadFromUDP (arguments 128 and up), mixed with
		// the other forms.
		fzSeq(fzWrite, 128+8, fzWrite, 8, fzWriteAP, 8, fzWrite, 128+17, fzDrain, 0, fzPeerSend, 6, fzRead, 128+2, fzPeerSend, 6, fzRead, 128+7, fzClose, 0, fzRead, 128+1, fzWrite, 128+1),
		// Many equal datagrams (GSO runs), then more than the budget.
		fzSeq(fzWrite, 9, fzWrite, 9, fzWrite, 9, fzWrite, 9, fzWrite, 9, fzWrite, 9, fzWrite, 9, fzWrite, 9, fzWrite, 16, fzWrite, 16, fzWrite, 9),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		runDiff(t, diffCase{name: "FuzzSequence", run: func(e *env) { runSequence(e, ops) }})
	})
}
