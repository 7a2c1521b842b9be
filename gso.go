package batchconn

import (
	"encoding/binary"
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
// segmentation offload than without: each message then carries a run.
// A queue grouped by destination (fanout.go) gathers twice as many, and
// in up to groupedQueueBytes: its runs are each destination's share of
// the queue, so that 1200-byte datagrams to 16 peers in turn leave in
// runs of up to 64 rather than 13 (what 256 KiB holds; a fast writer's
// queue leaves after MaxDelay with about 600). BenchmarkFanout, grouped,
// 5 interleaved runs: 861 -> 723 ns a datagram; with receivers that have
// GRO, whose kernel does not cut the runs up, 490 -> 304 (3 runs).
const gsoQueueFactor = 8

// coalesce returns how many of msgs, from the first, leave as one
// message, and the segment size to send it with: 0 for a lone datagram,
// which goes without a UDP_SEGMENT control message. It decides from the
// queue alone: no socket, clock or lock.
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
		if size == 0 || size > seg || m.addr != dst || total+size > limit {
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

// Control message layout (linux/socket.h), for the 64-bit and 32-bit
// systems Go supports: a header of length (size_t), level and type (int),
// then the data, each aligned to size_t.

// cmsgUint finds the control message of level and typ in oob and returns
// the unsigned integer it carries (UDP_GRO's segment size, SO_RXQ_OVFL's
// drop count), or 0 when there is none.
func cmsgUint(oob []byte, wordSize int, level, typ int32) int {
	data := cmsgData(oob, wordSize, level, typ)
	switch {
	case len(data) >= 4:
		return int(binary.NativeEndian.Uint32(data))
	case len(data) >= 2:
		return int(binary.NativeEndian.Uint16(data))
	}
	return 0
}

// cmsgData finds the control message of level and typ in oob and returns
// its data, or nil when there is none. It does not allocate, and returns
// nil for any malformed control data rather than trusting a length field.
func cmsgData(oob []byte, wordSize int, level, typ int32) []byte {
	hdrLen := align(wordSize+8, wordSize)
	for len(oob) >= hdrLen {
		var cmsgLen uint64
		if wordSize == 8 {
			cmsgLen = binary.NativeEndian.Uint64(oob)
		} else {
			cmsgLen = uint64(binary.NativeEndian.Uint32(oob))
		}
		if cmsgLen < uint64(hdrLen) || cmsgLen > uint64(len(oob)) {
			return nil
		}
		lvl := int32(binary.NativeEndian.Uint32(oob[wordSize:]))
		t := int32(binary.NativeEndian.Uint32(oob[wordSize+4:]))
		if lvl == level && t == typ {
			return oob[hdrLen:cmsgLen]
		}
		next := align(int(cmsgLen), wordSize)
		if next >= len(oob) {
			return nil
		}
		oob = oob[next:]
	}
	return nil
}

// putSegSize writes a UDP_SEGMENT control message for seg into oob and
// returns its length, padded.
func putSegSize(oob []byte, wordSize int, level, typ int32, seg uint16) int {
	var data [2]byte
	binary.NativeEndian.PutUint16(data[:], seg)
	return putCmsg(oob, wordSize, level, typ, data[:])
}

// putCmsg writes a control message of level and typ carrying data into
// oob, which must have room, and returns its length, padded to the word.
func putCmsg(oob []byte, wordSize int, level, typ int32, data []byte) int {
	hdrLen := align(wordSize+8, wordSize)
	cmsgLen := hdrLen + len(data)
	if wordSize == 8 {
		binary.NativeEndian.PutUint64(oob, uint64(cmsgLen))
	} else {
		binary.NativeEndian.PutUint32(oob, uint32(cmsgLen))
	}
	binary.NativeEndian.PutUint32(oob[wordSize:], uint32(level))
	binary.NativeEndian.PutUint32(oob[wordSize+4:], uint32(typ))
	copy(oob[hdrLen:], data)
	return align(cmsgLen, wordSize)
}

func align(n, word int) int { return (n + word - 1) &^ (word - 1) }
