package batchconn

import "encoding/binary"

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
