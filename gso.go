package batchconn

import (
	"net/netip"
)

// UDP segmentation offload lets one message carry many datagrams: on send
// (GSO) the kernel cuts a buffer into segments of a given size; on receive
// (GRO) it hands over several datagrams of one flow as one buffer with
// their size. The rules the kernel enforces, which coalesce keeps:
//   - every segment of a message but the last has the same size, and the
//     last is no longer (a shorter one ends the message);
//   - all go to the same destination;
//   - at most maxSegs segments (UDP_MAX_SEGMENTS: 64 on older kernels,
//     128 on newer ones);
//   - at most maxPayload4 or maxPayload6 bytes in all, by the
//     destination's family;
//   - no zero-length segment.

// gsoMaxSegs is the most segments one message may carry on every kernel
// with UDP GSO (4.18 on); gsoMaxSegsProbe, on newer kernels that take
// more, where a probe finds they do.
const (
	gsoMaxSegs      = 64
	gsoMaxSegsProbe = 128
)

// gsoQueueFactor is how many more datagrams the queue gathers with
// segmentation offload than without, so that each message carries a run.
const gsoQueueFactor = 8

// coalesce returns how many of msgs, from the first, leave as one
// message, and the segment size to send it with: 0 for a lone datagram,
// which goes without a UDP_SEGMENT control message. It decides from the
// queue alone: no socket, clock or lock. A datagram of a caller's message
// (WriteMsgUDP) joins no run: the caller cut its messages itself.
func coalesce(msgs []txMsg, maxSegs int) (n, seg int) {
	if len(msgs) == 0 {
		return 0, 0
	}
	seg = len(msgs[0].buf)
	dst := msgs[0].addr
	limit := payloadLimit(dst)
	if seg == 0 || maxSegs < 2 {
		return 1, 0
	}
	total := seg
	n = 1
	for n < len(msgs) && n < maxSegs {
		m := &msgs[n]
		size := len(m.buf)
		if size == 0 || size > seg || m.addr != dst || total+size > limit || m.own != 0 {
			break
		}
		total += size
		n++
		if size < seg {
			break // a shorter segment is the last
		}
	}
	if n == 1 {
		return 1, 0
	}
	return n, seg
}

// payloadLimit is the most UDP payload one message may carry to dst.
func payloadLimit(dst netip.AddrPort) int {
	if ip := dst.Addr(); ip.Is4() || ip.Is4In6() {
		return maxPayload4
	}
	return maxPayload6
}

// segment returns the bounds of the datagram at off in a received buffer
// of n bytes that holds segments of seg bytes (the last may be shorter);
// seg 0 means the buffer is one datagram. It returns end == off only for
// a zero-length datagram, which is never coalesced.
func segment(n, seg, off int) (end int) {
	if seg <= 0 || off+seg >= n {
		return n
	}
	return off + seg
}

// gsoRunMustSplit reports whether a run of datagrams, of these sizes in
// order, that coalesce would send as one segmented message must instead
// leave one datagram a message on a kernel whose gates say
// equalRunsUnsafe.
//
// The broken shape is a segmented message of two or more segments all of
// one length; a run whose last datagram is shorter than the others is
// safe as it is. A run of n equal datagrams cannot be mended by sending
// n-1 of them segmented and the last alone: for n >= 3 those n-1 are
// still two or more segments of one length, the broken shape (for n = 2
// it is the same as sending both alone). Nor can a following shorter
// datagram be pulled in ahead of the last equal one without reordering.
// So an equal run goes one datagram a message: still in the same
// sendmmsg call, so batching is kept, and only that run loses offload.
// Runs that end short (a burst whose last packet is smaller) keep GSO; a
// bulk stream of one size loses it, as if GSO were off for it.
// (tailscale instead appends a 1-byte sentinel datagram to each equal
// run; a wrapper cannot add datagrams the caller did not write, and the
// sentinel crashes some Broadcom bnxt_en firmware, tailscale#20994.)
//
// run is expected in coalesce's shape (every datagram but the last as
// long as the first, the last no longer); any other run is judged by the
// same rule: it must split when it has two or more datagrams, all of one
// size.
func gsoRunMustSplit(run []txMsg) bool {
	if len(run) < 2 {
		return false // a lone datagram goes without UDP_SEGMENT
	}
	for _, m := range run[1:] {
		if len(m.buf) != len(run[0].buf) {
			return false
		}
	}
	return true
}
