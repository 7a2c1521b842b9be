package main

import (
	"errors"
	"io"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batcher is what xnet uses of x/net's ipv4.PacketConn, or
// ipv6.PacketConn for an IPv6 socket: both take ipv4.Message.
type batcher interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// xnetConn is the xnet mode's batchLoop: ReadBatch and WriteBatch of
// batchSize messages. On Linux x/net calls recvmmsg and sendmmsg; no
// offload.
type xnetConn struct {
	bc    batcher
	msgs  []ipv4.Message
	bufs  [][]byte
	addrs []net.Addr // sending: the destinations
}

// newXnetConn prepares uc to move datagrams of up to slot bytes, to dsts
// if it sends.
func newXnetConn(uc *net.UDPConn, slot int, dsts []netip.AddrPort) *xnetConn {
	var bc batcher = ipv6.NewPacketConn(uc)
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		bc = ipv4.NewPacketConn(uc)
	}
	c := &xnetConn{bc: bc, msgs: make([]ipv4.Message, batchSize), bufs: make([][]byte, batchSize)}
	mem := make([]byte, batchSize*slot)
	for i := range c.msgs {
		c.bufs[i] = mem[i*slot : (i+1)*slot : (i+1)*slot]
		c.msgs[i].Buffers = [][]byte{c.bufs[i]}
	}
	for _, ap := range dsts {
		c.addrs = append(c.addrs, net.UDPAddrFromAddrPort(ap))
	}
	return c
}

func (c *xnetConn) buf(i int) []byte         { return c.bufs[i] }
func (c *xnetConn) to(i, dst int)            { c.msgs[i].Addr = c.addrs[dst] }
func (c *xnetConn) msg(i int) []byte         { return c.bufs[i][:c.msgs[i].N] }
func (c *xnetConn) writeBatch() (int, error) { return c.writeAll(c.msgs) }
func (c *xnetConn) readBatch() (int, error)  { return c.bc.ReadBatch(c.msgs, 0) }

// writeAll writes ms in as many WriteBatch calls as the kernel needs.
func (c *xnetConn) writeAll(ms []ipv4.Message) (int, error) {
	off := 0
	for off < len(ms) {
		n, err := c.bc.WriteBatch(ms[off:], 0)
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

// xnetEcho is echo written with x/net: it reads a batch with ReadBatch
// and writes each datagram back to its sender with WriteBatch, until uc
// is closed.
func xnetEcho(uc *net.UDPConn) error {
	c := newXnetConn(uc, maxDatagram, nil)
	replies := make([]ipv4.Message, batchSize)
	for i := range replies {
		replies[i].Buffers = make([][]byte, 1)
	}
	for {
		k, err := c.readBatch()
		if errors.Is(err, net.ErrClosed) {
			return nil
		} else if err != nil {
			return err
		}
		for i := range k {
			replies[i].Buffers[0] = c.msg(i)
			replies[i].Addr = c.msgs[i].Addr
		}
		if _, err := c.writeAll(replies[:k]); err != nil {
			return err
		}
	}
}
