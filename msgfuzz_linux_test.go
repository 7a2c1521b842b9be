package batchconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FuzzWriteControl writes one datagram with the caller's control messages
// (built from the input: well-formed, malformed, unknown, repeated) to a
// plain conn and to a batchconn whose every write is queued: both calls
// must give the same answer, the queue must never fail at the flush for
// a reason plain gave at the call, and the peers must receive the same.
func FuzzWriteControl(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0x2e}, uint16(100), false)
	f.Add([]byte{0, 1, 1, 0, 0, 0, 0x2e, 0, 0, 0, 1, 3, 7}, uint16(1000), false)
	f.Add([]byte{1, 0, 0, 100, 0}, uint16(950), false)           // UDP_SEGMENT 100
	f.Add([]byte{1, 0, 0, 100, 0, 1, 0, 0, 1}, uint16(1), false) // two segment sizes
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0}, uint16(10), false)
	f.Add([]byte{9, 9, 9, 9}, uint16(10), true)
	f.Add([]byte{16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, uint16(10), true)
	pc := fuzzConn(f, nil)
	bc := fuzzConn(f, func(uc *net.UDPConn) msgConn { return newConn(uc, &Config{}, hooks{idleGap: time.Hour}) })
	f.Cleanup(func() { pc.Close(); bc.Close() })
	f.Fuzz(func(t *testing.T, spec []byte, size uint16, raw bool) {
		oob := spec
		if !raw {
			oob = fuzzControl(spec)
		}
		// Peers of this input's own: a datagram of an earlier input that
		// the kernel delivers late (loopback's softirq deferred under
		// load) goes to an earlier peer, never this one's.
		pp, bp := fuzzPeer(t), fuzzPeer(t)
		p := seqN(int(size)%4000, byte(size))
		wantN, wantOOBN, wantErr := pc.WriteMsgUDP(p, oob, pp.LocalAddr().(*net.UDPAddr))
		n, oobn, err := bc.WriteMsgUDP(p, oob, bp.LocalAddr().(*net.UDPAddr))
		if n != wantN || oobn != wantOOBN || errnoOf(err) != errnoOf(wantErr) {
			t.Fatalf("oob %x, %d bytes: plain %d %d %v, batchconn %d %d %v", oob, len(p), wantN, wantOOBN, wantErr, n, oobn, err)
		}
		if err := bc.(*PacketConn).Flush(); err != nil {
			t.Fatalf("oob %x, %d bytes: a queued message failed at the flush: %v", oob, len(p), err)
		}
		want := peerReceived(pp, 0, 2*time.Millisecond)
		got := peerReceived(bp, len(want), 2*time.Millisecond)
		if fmt.Sprint(got) != fmt.Sprint(want) { // late on one side? wait longer for both
			want = append(want, peerReceived(pp, 0, 100*time.Millisecond)...)
			got = append(got, peerReceived(bp, len(want)-len(got), 100*time.Millisecond)...)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("oob %x, %d bytes: the peers received differently:\nplain:     %s\nbatchconn: %s", oob, len(p), want, got)
		}
	})
}

// fuzzControl builds control messages from spec, each from a kind byte
// and the bytes after it: the kinds the queue takes, with values and
// lengths from spec, and others.
func fuzzControl(spec []byte) []byte {
	var out []byte
	for len(spec) > 0 {
		kind := spec[0] % 8
		spec = spec[1:]
		take := func(n int) []byte {
			d := make([]byte, n)
			spec = spec[copy(d, spec):]
			return d
		}
		switch kind {
		case 0: // IP_TOS, one byte or an int
			if len(spec) > 0 && spec[0]%2 == 1 {
				spec = spec[1:]
				out = append(out, cm(unix.IPPROTO_IP, unix.IP_TOS, take(4))...)
			} else {
				out = append(out, cm(unix.IPPROTO_IP, unix.IP_TOS, take(1))...)
			}
		case 1: // UDP_SEGMENT
			out = append(out, cm(unix.SOL_UDP, unix.UDP_SEGMENT, take(2))...)
		case 2: // IP_PKTINFO
			out = append(out, cm(unix.IPPROTO_IP, unix.IP_PKTINFO, take(12))...)
		case 3: // IP_TTL
			out = append(out, cm(unix.IPPROTO_IP, unix.IP_TTL, take(4))...)
		case 4: // any level and type, short data
			lt := take(3)
			out = append(out, cm(int32(lt[0]%64), int32(lt[1]), take(int(lt[2]%24)))...)
		case 5: // a length that lies
			m := cm(unix.IPPROTO_IP, unix.IP_TOS, take(1))
			binary.NativeEndian.PutUint32(m, uint32(take(1)[0]))
			out = append(out, m...)
		case 6: // trailing bytes
			out = append(out, take(int(take(1)[0]%20))...)
		case 7: // IPv6's, ignored on an IPv4 socket
			out = append(out, cm(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, take(4))...)
		}
	}
	return out
}

func fuzzConn(f *testing.F, wrap func(*net.UDPConn) msgConn) msgConn {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	if wrap == nil {
		return uc
	}
	return wrap(uc)
}

// fuzzPeer opens a receiver that reports each datagram's TOS and TTL,
// closed when the input is done.
func fuzzPeer(t *testing.T) *net.UDPConn {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	rc, _ := peer.SyscallConn()
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
	})
	return peer
}

// peerReceived describes what the peer has received: each datagram's
// length, digest and control messages. It reads until no datagram comes
// for quiet, and, while it has fewer than atLeast, for up to a second.
func peerReceived(peer *net.UDPConn, atLeast int, quiet time.Duration) []string {
	var out []string
	for {
		wait := quiet
		if len(out) < atLeast {
			wait = time.Second
		}
		peer.SetReadDeadline(time.Now().Add(wait))
		b, oob := make([]byte, 70000), make([]byte, 128)
		n, oobn, _, _, err := peer.ReadMsgUDP(b, oob)
		if err != nil {
			return out
		}
		out = append(out, fmt.Sprintf("%d %s %s", n, digest(b[:n]), describeControl(oob[:oobn])))
	}
}

func errnoOf(err error) string {
	if err == nil {
		return "nil"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e.Error()
	}
	return fmt.Sprintf("%T", err)
}
