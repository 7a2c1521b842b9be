package batchconn

import (
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
)

// Writes with control messages. A caller's WriteMsgUDP is queued as a
// WriteTo is, with its control messages beside its payload in the arena,
// where the queue can tell at the call that the kernel will take them
// (cmsgsend.go); else plain sends it, after the queue. A message with a
// segment size (UDP_SEGMENT) is queued as the datagrams it makes, which
// leave as one segmented message, as the caller cut them, where the
// kernel's gates and the route allow, and one datagram a message where
// not: the fallbacks of the conn's own runs (writeBatch).

// callerMsg is one WriteMsgUDP call's control messages.
type callerMsg struct {
	oob   []byte         // as the caller gave them
	arg   netip.AddrPort // the caller's destination, invalid where none (a connected socket)
	sc    sendControl    // read, where the queue may carry them
	count int            // the datagrams the message makes
}

func (c *batched) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	m := callerMsg{oob: oob}
	d := dest{via: viaWriteMsgUDP}
	if addr != nil {
		d.addr = addr
		m.arg, _ = c.s.queueable(addr, len(b))
	}
	ok := addr == nil || m.arg.IsValid()
	return c.writeMsg(b, &d, &m, ok)
}

func (c *batched) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	m := callerMsg{oob: oob, arg: addr}
	d := dest{via: viaWriteMsgUDPAddrPort}
	return c.writeMsg(b, &d, &m, true)
}

// writeMsg queues a caller's message, or has plain send it where the
// queue cannot carry it; ok false says plain must (an address plain
// treats specially).
func (c *batched) writeMsg(b []byte, d *dest, m *callerMsg, ok bool) (int, int, error) {
	s := &c.s
	switch {
	case !ok:
	case s.raddr != nil:
		// Connected: to the peer, as Write; an address is plain's error.
		ok = !m.arg.IsValid() && d.addr == nil && s.peer.IsValid() && len(b) <= payloadLimit(s.peer)
		d.ap = s.peer
	default:
		ok = s.queueableAddrPort(m.arg, len(b))
		d.ap = m.arg
	}
	if ok {
		ok = m.read(b, d.ap, s, c.w.io)
	}
	var n int
	var err error
	if ok {
		n, err = c.w.write(b, d, m)
	} else {
		n, err = c.w.writePlain(b, d, m)
	}
	if err != nil {
		return n, 0, err
	}
	return n, len(m.oob), nil
}

// read reads the message's control messages for a datagram b to dst and
// reports whether the queue may carry it.
func (m *callerMsg) read(b []byte, dst netip.AddrPort, s *socket, io txIO) bool {
	sc, ok := parseSendControl(m.oob, wordSize, dst, s.info.ipv6)
	if !ok || sc.hasSrc && !io.takesSource(sc.src, sc.ifindex) || len(b)+sc.ctlLen > s.cfg.QueueBytes {
		return false
	}
	count := 1
	if sc.seg > 0 && len(b) > sc.seg {
		// The kernel refuses more segments than UDP_MAX_SEGMENTS at the
		// call: where that is more than every kernel takes, plain answers.
		count = (len(b) + sc.seg - 1) / sc.seg
		if count > gsoMaxSegs {
			return false
		}
	} else {
		sc.seg = 0 // one datagram: no segmentation
	}
	m.sc, m.count = sc, count
	return true
}

// plain makes the caller's WriteMsgUDP call on plain, with its control
// messages as given.
func (m *callerMsg) plain(uc *net.UDPConn, p []byte, d *dest) (int, error) {
	return m.send(uc, p, m.oob, d)
}

// send makes the caller's call on plain with the control messages oob,
// so that its errors name the destination as the caller's call would.
func (m *callerMsg) send(uc *net.UDPConn, p, oob []byte, d *dest) (int, error) {
	if d.via == viaWriteMsgUDP {
		ua, _ := d.addr.(*net.UDPAddr)
		n, _, err := uc.WriteMsgUDP(p, oob, ua)
		return n, err
	}
	n, _, err := uc.WriteMsgUDPAddrPort(p, oob, m.arg)
	return n, err
}

// sendMsgNow sends a caller's message at once through plain: as the
// caller gave it where the queue could not read its control messages
// (m.count 0); else with the source the conn learnt for its destination
// where the caller chose none, and, where the message is segmented but
// the conn's offload would not send it so (the kernel's gates, the
// route's refusals), as separate datagrams. w.mu is held.
func (w *writer) sendMsgNow(p []byte, d *dest, m *callerMsg) (int, error) {
	if m.count == 0 {
		return m.plain(w.s.uc, p, d)
	}
	var oob [maxQueuedControl + oobSpaceDirect + 32]byte
	used := copy(oob[:], m.sc.ctl[:m.sc.ctlLen])
	if !m.sc.hasSrc {
		src, k := w.io.sourceFor(d.ap)
		used += copy(oob[used:], src[:k])
	}
	if m.count == 1 || w.io.segmentsRun(d.ap, m.sc.seg, len(p)%m.sc.seg == 0) {
		if m.sc.seg > 0 {
			used += putSegSize(oob[used:], wordSize, solUDP, udpSegment, uint16(m.sc.seg))
		}
		n, err := m.send(w.s.uc, p, oob[:used], d)
		if err == nil && m.count > 1 {
			w.s.stats.offloadSent.Add(uint64(m.count))
		}
		return n, err
	}
	for at := 0; at < len(p); at += m.sc.seg {
		if at > 0 {
			w.s.stats.writeCalls.Add(1) // sendNow counts the first
		}
		if _, err := m.send(w.s.uc, p[at:min(at+m.sc.seg, len(p))], oob[:used], d); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// pushMsg appends a caller's message to the queue, which has room for
// it: payload and control messages into the arena, one entry for each
// datagram it makes. w.mu is held.
func (w *writer) pushMsg(p []byte, d *dest, m *callerMsg) {
	sc := &m.sc
	at := w.used
	ctl := at + len(p)
	w.used = ctl + sc.ctlLen
	copyUnseen(w.blk.arena[at:ctl], p)
	copy(w.blk.arena[ctl:w.used], sc.ctl[:sc.ctlLen])
	own := txMessage
	if sc.hasSrc {
		own |= txSource
	}
	seg := len(p)
	if sc.seg > 0 {
		seg = sc.seg
	}
	for j := range m.count {
		lo := at + j*seg
		hi := min(lo+seg, ctl)
		e := txMsg{buf: w.blk.arena[lo:hi:hi], addr: d.ap, ctl: int32(ctl), ctlLen: uint8(sc.ctlLen), own: own}
		if j == 0 {
			e.run = uint16(m.count)
		}
		w.msgs = append(w.msgs, e)
		if w.grouped {
			w.blk.fan.add(d.ap, hi-lo)
		}
	}
	if w.grouped {
		w.blk.fan.endRun()
	}
	w.runs++
	w.runSeg = -1 // the next datagram starts a run of its own
	w.queued.Store(int32(len(w.msgs)))
}

// WriteBatch queues each message as WriteMsgUDP does.
func (c *batched) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	if flags != 0 {
		return 0, c.s.opError("write", nil, errBatchFlags)
	}
	return writeMessages(ms, c.WriteMsgUDP, func(addr net.Addr) error {
		return c.s.opError("write", addr, syscall.EINVAL)
	})
}
