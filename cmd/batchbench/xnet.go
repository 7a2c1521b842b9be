package main

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batcher is what the xnet mode uses of golang.org/x/net's
// ipv4.PacketConn, or ipv6.PacketConn for an IPv6 socket: both take the
// same Message type.
type batcher interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// xnetConn is the xnet mode: the scenario's loop written by hand with
// x/net's ReadBatch and WriteBatch of batchSize messages, each with a
// buffer of its own, as a user would write it who rewrote their I/O for
// batching rather than use batchconn. On Linux x/net calls recvmmsg and
// sendmmsg, elsewhere it moves one message a call. No offload. The
// socket's deadlines hold, as in the other modes: x/net waits in the
// runtime's poller.
type xnetConn struct {
	uc    *net.UDPConn
	bc    batcher
	msgs  []ipv4.Message
	bufs  [][]byte // a buffer per message
	calls callCounts

	// Sending: the payload copied into each message's buffer, and the
	// destinations, which the messages go to in turn.
	payload []byte
	addrs   []net.Addr
}

func newXnetConn(uc *net.UDPConn, slot int) *xnetConn {
	var bc batcher = ipv6.NewPacketConn(uc)
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		bc = ipv4.NewPacketConn(uc)
	}
	c := &xnetConn{uc: uc, bc: bc, msgs: make([]ipv4.Message, batchSize), bufs: make([][]byte, batchSize)}
	mem := make([]byte, batchSize*slot)
	for i := range c.msgs {
		c.bufs[i] = mem[i*slot : (i+1)*slot : (i+1)*slot]
		c.msgs[i].Buffers = [][]byte{c.bufs[i]}
	}
	return c
}

// newXnetSender prepares uc to send datagrams of size to dsts in turn.
func newXnetSender(uc *net.UDPConn, dsts []netip.AddrPort, size int) *xnetConn {
	c := newXnetConn(uc, size)
	c.payload = make([]byte, size)
	for _, ap := range dsts {
		c.addrs = append(c.addrs, net.UDPAddrFromAddrPort(ap))
	}
	return c
}

// newXnetReceiver prepares uc to receive datagrams of any size.
func newXnetReceiver(uc *net.UDPConn) *xnetConn { return newXnetConn(uc, maxDatagram) }

func (c *xnetConn) counts() callCounts { return c.calls }

// send is blast written with WriteBatch, as raw's send is with sendmmsg:
// it fills the batch, each message's buffer a copy of the payload
// stamped with the next sequence number (stream 0) and addressed to the
// next destination in turn, writes it all, and so on until end (looked
// at before each batch). It returns how many datagrams the kernel took.
func (c *xnetConn) send(end time.Time) (uint64, error) {
	n := uint64(len(c.addrs))
	var seq uint64
	for time.Now().Before(end) {
		for i := range c.msgs {
			copy(c.bufs[i], c.payload)
			stamp(c.bufs[i], seq+uint64(i))
			c.msgs[i].Addr = c.addrs[(seq+uint64(i))%n]
		}
		sent, err := c.writeAll(c.msgs)
		seq += uint64(sent)
		if err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// writeAll writes ms with as many WriteBatch calls as the kernel needs
// (it may take part of a batch), and returns how many messages went.
func (c *xnetConn) writeAll(ms []ipv4.Message) (int, error) {
	off := 0
	for off < len(ms) {
		n, err := c.bc.WriteBatch(ms[off:], 0)
		c.calls.WriteCalls++
		c.calls.Written += uint64(n)
		off += n
		switch {
		case err != nil:
			return off, err
		case n == 0:
			return off, io.ErrNoProgress // never seen; must not spin
		}
	}
	return off, nil
}

// reader is a receiver's read: one ReadBatch of up to batchSize
// datagrams, each checked with ord.
func (c *xnetConn) reader(ord *order, size int) func() (uint64, error) {
	return func() (uint64, error) {
		n, err := c.bc.ReadBatch(c.msgs, 0)
		if err != nil {
			return 0, err
		}
		c.calls.ReadCalls++
		c.calls.Read += uint64(n)
		for i := range n {
			ord.see(c.bufs[i][:c.msgs[i].N], size)
		}
		return uint64(n), nil
	}
}

// xnetEcho is echo written by hand with x/net: it reads up to batchSize
// datagrams with ReadBatch, writes each back to its sender with
// WriteBatch, and so on until uc is closed, counting them in n.
func xnetEcho(uc *net.UDPConn, n *atomic.Uint64) error {
	c := newXnetReceiver(uc)
	replies := make([]ipv4.Message, batchSize)
	for i := range replies {
		replies[i].Buffers = make([][]byte, 1)
	}
	for {
		k, err := c.bc.ReadBatch(c.msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		for i := range k {
			replies[i].Buffers[0] = c.bufs[i][:c.msgs[i].N]
			replies[i].Addr = c.msgs[i].Addr
		}
		if _, err := c.writeAll(replies[:k]); err != nil {
			return err
		}
		n.Add(uint64(k))
	}
}
