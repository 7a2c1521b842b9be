package batchconn

import "syscall"

// A fault-injecting system-call layer, for tests only: the poller's
// callbacks, which the halves make once, are wrapped where a test needs
// the kernel to answer as this one no longer does.

// injectSendFault makes each sendmmsg of c first ask fault about the
// call's first message: a non-zero errno fails the call with it, before
// the kernel sees it, as a kernel or device that refuses the message would.
func injectSendFault(c *PacketConn, fault func(h *mmsghdr) syscall.Errno) {
	m := c.b().w.io.(*mmsgIO)
	tx, real := &m.tx, m.tx.callback
	tx.callback = func(fd uintptr) bool {
		if e := fault(&tx.hdr.hdrs[0]); e != 0 {
			tx.sent, tx.errno = 0, e
			return true
		}
		return real(fd)
	}
}

// limitControlRoom gives each message of c's receive calls only room
// bytes for control data, so that the kernel cuts it short (MSG_CTRUNC)
// as it would for options that need more than rxOOBSpace.
func limitControlRoom(c *PacketConn, room int) {
	m := c.b().r.io.(*mmsgIO)
	rx, real := &m.rx, m.rx.callback
	rx.callback = func(fd uintptr) bool {
		for i := rx.first; i < rx.first+rx.offered; i++ {
			if h := &rx.hdr.hdrs[i].Hdr; h.Control != nil {
				h.SetControllen(room)
			}
		}
		return real(fd)
	}
}
