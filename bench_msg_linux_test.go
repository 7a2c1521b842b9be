package batchconn

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The message calls as quic-go makes them: reads with ECN and packet info
// turned on, writes of 1200-byte datagrams with an ECN mark, alone or
// cut by the caller (UDP_SEGMENT, 10 a message).

// BenchmarkReadMsgUDPGSOPeer drains a GSO sender's stream through
// ReadMsgUDPAddrPort with TOS and packet info turned on.
func BenchmarkReadMsgUDPGSOPeer(b *testing.B) {
	for _, size := range benchSizes {
		for _, k := range benchKinds {
			b.Run(k.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				benchDrain(b, nil, size, func(rx *net.UDPConn) drainer {
					conn := k.wrap(rx)
					setOpt(b, conn, [3]int{unix.IPPROTO_IP, unix.IP_RECVTOS, 1}, [3]int{unix.IPPROTO_IP, unix.IP_PKTINFO, 1})
					mc := conn.(interface {
						ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
					})
					oob := make([]byte, 128)
					return drainer{conn.SetReadDeadline, func(p []byte) error {
						_, oobn, _, _, err := mc.ReadMsgUDPAddrPort(p, oob)
						if err == nil && oobn == 0 {
							b.Fatal("no control messages")
						}
						return err
					}, conn.Close}
				})
			})
		}
	}
}

// BenchmarkWriteMsgUDP writes 1200-byte datagrams with an ECN mark to one
// destination, one a call or ten a call as one segmented message.
func BenchmarkWriteMsgUDP(b *testing.B) {
	for _, segs := range []int{1, 10} {
		for _, k := range benchKinds {
			b.Run(k.name+"/1200B/"+strconv.Itoa(segs)+"seg", func(b *testing.B) {
				sink := listenLoopback(b)
				defer sink.Close()
				conn := k.wrap(listenLoopback(b)).(msgConn)
				dst := sink.LocalAddr().(*net.UDPAddr)
				p := make([]byte, 1200*segs)
				oob := cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{0x02})
				if segs > 1 {
					oob = cat(oob, segSize(1200))
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, _, err := conn.WriteMsgUDP(p, oob, dst); err != nil {
						b.Fatal(err)
					}
				}
				if err := conn.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				reportRate(b, b.N*segs)
				reportShape(b, conn)
			})
		}
	}
}
