package batchconn

import (
	"encoding/binary"
	"unsafe"
)

// wordSize is the alignment of control messages: the size of a C long.
const wordSize = int(unsafe.Sizeof(uintptr(0)))

// Control message layout (linux/socket.h), for the 64-bit and 32-bit
// systems Go supports: a header of length (size_t), level and type (int),
// then the data, each aligned to size_t.

// cmsgUint finds the control message of level and typ in oob and returns
// the unsigned integer it carries (UDP_GRO's segment size), or 0 when
// there is none.
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

// Linux's numbers for the control messages the conn reads or checks. The
// codec is free of the system so that its rules are tested everywhere;
// only Linux batches.
const (
	solSocket = 1
	solIP     = 0
	solIPv6   = 41
	solUDP    = 17

	ipTOS        = 1
	ipTTL        = 2
	ipPktinfo    = 8
	ipv6Pktinfo  = 50
	ipv6HopLimit = 52
	ipv6TClass   = 67
	udpSegment   = 103
	udpGRO       = 104
)

// controlHide names the control messages a socket delivers for the conn's
// own use (UDP_GRO's segment size; the packet info it chooses reply
// sources by), which a caller who did not turn them on must not see.
type controlHide uint8

const (
	hideGRO      controlHide = 1 << iota // UDP_GRO: always the conn's, which hands its datagrams out one by one
	hidePktinfo4                         // IP_PKTINFO, turned on by the conn and not by its caller
	hidePktinfo6                         // IPV6_PKTINFO, likewise
)

func (h controlHide) hides(level, typ int32) bool {
	switch {
	case level == solUDP && typ == udpGRO:
		return h&hideGRO != 0
	case level == solIP && typ == ipPktinfo:
		return h&hidePktinfo4 != 0
	case level == solIPv6 && typ == ipv6Pktinfo:
		return h&hidePktinfo6 != 0
	}
	return false
}

// copyControl copies the control messages the kernel wrote into src, but
// those hide names, into a caller's buffer dst as the kernel writes them
// into a caller's own (put_cmsg in net/core/scm.c): each padded to the
// word, in order; one that does not fit whole is cut to the room left,
// its length saying so, and none fits after it. It returns the bytes
// written (plain's oobn) and whether any message was cut or left out
// (plain's MSG_CTRUNC). Malformed control data in src ends the copy.
func copyControl(dst, src []byte, wordSize int, hide controlHide) (n int, cut bool) {
	hdrLen := align(wordSize+8, wordSize)
	for len(src) >= hdrLen {
		cmsgLen := int(cmsgLength(src, wordSize))
		if cmsgLen < hdrLen || cmsgLen > len(src) {
			break
		}
		level := int32(binary.NativeEndian.Uint32(src[wordSize:]))
		typ := int32(binary.NativeEndian.Uint32(src[wordSize+4:]))
		if !hide.hides(level, typ) {
			room := len(dst) - n
			if room < hdrLen {
				cut = true
			} else {
				l := cmsgLen
				if room < l {
					cut, l = true, room
				}
				out := dst[n:]
				putCmsgLength(out, wordSize, l)
				copy(out[wordSize:hdrLen], src[wordSize:hdrLen])
				copy(out[hdrLen:l], src[hdrLen:cmsgLen])
				n += min(align(cmsgLen, wordSize), room)
			}
		}
		next := align(cmsgLen, wordSize)
		if next >= len(src) {
			break
		}
		src = src[next:]
	}
	return n, cut
}

func cmsgLength(b []byte, wordSize int) uint64 {
	if wordSize == 8 {
		return binary.NativeEndian.Uint64(b)
	}
	return uint64(binary.NativeEndian.Uint32(b))
}

func putCmsgLength(b []byte, wordSize, n int) {
	if wordSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(n))
	}
}
