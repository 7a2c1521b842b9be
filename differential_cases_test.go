package batchconn

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

var diffCases = []diffCase{
	{name: "ReadReturnsDatagramAndSender", run: func(e *env) {
		e.peerSend([]byte("hello"))
		e.read(64)
		e.peerSend([]byte("again"))
		e.readAddrPort(64)
	}},
	{name: "ReadTruncatesToBuffer", run: func(e *env) {
		e.peerSend(seq(100))
		e.peerSend([]byte("next"))
		e.read(10)
		e.read(64)
	}},
	{name: "ReadZeroLengthDatagram", run: func(e *env) {
		e.peerSend(nil)
		e.peerSend([]byte("x"))
		e.read(64)
		e.read(64)
	}},
	{name: "ReadIntoEmptyBuffer", run: func(e *env) {
		e.peerSend([]byte("abc"))
		e.peerSend([]byte("def"))
		e.read(-1)
		e.read(0)
		e.peerSend([]byte("ghi"))
		e.read(64)
	}},
	{name: "ReadLargestIPv4Datagram", run: func(e *env) {
		e.peerSend(seq(maxPayload4))
		e.read(70000)
		e.peerSend(seq(maxPayload4))
		e.read(1000)
	}},
	{name: "ReadKeepsOrder", run: func(e *env) {
		for i := range 100 {
			e.peerSend([]byte(strconv.Itoa(i)))
		}
		for range 100 {
			e.read(16)
		}
	}},
	{name: "PassedReadDeadlineFailsWithDatagramsBuffered", run: func(e *env) {
		e.peerSend([]byte("a"))
		e.peerSend([]byte("b"))
		e.peerSend([]byte("c"))
		e.read(16)
		e.conn.SetReadDeadline(time.Now().Add(-time.Second))
		e.read(16)
		e.read(16)
		e.conn.SetReadDeadline(time.Time{})
		e.read(16)
		e.conn.SetReadDeadline(time.Now().Add(time.Hour))
		e.read(16)
	}},
	{name: "ReadDeadlineExpires", run: func(e *env) {
		e.conn.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		e.read(16)
		e.read(16)
		e.conn.SetReadDeadline(time.Time{})
		e.peerSend([]byte("after"))
		e.read(16)
	}},
	{name: "ReadDeadlinePassesWithDatagramsBuffered", run: func(e *env) {
		// The deadline comes while the first read's batch is still being
		// handed out; then it is moved later twice, the first time after
		// batchconn set a timer for it (the second read tests it).
		for _, p := range []string{"a", "b", "c", "d", "e"} {
			e.peerSend([]byte(p))
		}
		first := time.Now().Add(100 * time.Millisecond)
		e.conn.SetReadDeadline(first)
		e.read(16)
		e.read(16)
		second := time.Now().Add(300 * time.Millisecond)
		e.conn.SetReadDeadline(second)
		time.Sleep(time.Until(first) + 50*time.Millisecond)
		e.read(16) // the first deadline passed, the second has not
		time.Sleep(time.Until(second) + 50*time.Millisecond)
		e.read(16)
		e.conn.SetReadDeadline(time.Now().Add(time.Hour))
		e.read(16)
		e.read(16)
	}},
	{name: "WriteDeadlinePassesBetweenWrites", run: func(e *env) {
		end := time.Now().Add(50 * time.Millisecond)
		e.conn.SetWriteDeadline(end)
		for _, p := range []string{"a", "b", "c"} {
			e.write([]byte(p), e.peerAddr())
		}
		time.Sleep(time.Until(end) + 50*time.Millisecond)
		e.write([]byte("d"), e.peerAddr())
		e.write([]byte("e"), e.peerAddr())
		for range 3 {
			e.peerRead()
		}
		e.conn.SetWriteDeadline(time.Time{})
		e.write([]byte("f"), e.peerAddr())
		e.peerRead()
		e.peerExpectNothing()
	}},
	{name: "SetReadDeadlineNowWakesBlockedReader", run: func(e *env) {
		wait := e.readAsync(16)
		waitBlocked()
		e.conn.SetReadDeadline(time.Now())
		wait()
	}},
	{name: "ReadDeadlineMovedLaterWhileBlocked", run: func(e *env) {
		// The first deadline leaves the blocked read half a second to be
		// moved, room enough on a loaded machine.
		first := time.Now().Add(500 * time.Millisecond)
		e.conn.SetReadDeadline(first)
		wait := e.readAsync(16)
		waitBlocked()
		e.conn.SetReadDeadline(time.Now().Add(time.Hour))
		time.Sleep(time.Until(first) + 50*time.Millisecond)
		e.peerSend([]byte("late"))
		wait()
	}},
	{name: "CloseWakesBlockedReader", run: func(e *env) {
		wait := e.readAsync(16)
		waitBlocked()
		e.logf("Close = %s", describe(e.conn.Close()))
		wait()
	}},
	{name: "UseAfterClose", run: func(e *env) {
		e.peerSend([]byte("a"))
		e.peerSend([]byte("b"))
		e.read(16)
		e.logf("Close = %s", describe(e.conn.Close()))
		e.read(16)
		e.write([]byte("x"), e.peerAddr())
		e.write([]byte("x"), nil)
		e.writeAddrPort([]byte("x"), e.peerAddr().AddrPort())
		e.logf("SetDeadline = %s", describe(e.conn.SetDeadline(time.Now())))
		e.logf("SetReadDeadline = %s", describe(e.conn.SetReadDeadline(time.Now())))
		e.logf("SetWriteDeadline = %s", describe(e.conn.SetWriteDeadline(time.Now())))
		e.logf("LocalAddr = %v", e.conn.LocalAddr())
		e.logf("Close = %s", describe(e.conn.Close()))
		e.peerExpectNothing()
	}},
	{name: "WriteDatagram", run: func(e *env) {
		e.write([]byte("hello"), e.peerAddr())
		e.peerRead()
		e.writeAddrPort([]byte("port"), e.peerAddr().AddrPort())
		e.peerRead()
	}},
	{name: "WriteZeroLengthDatagram", run: func(e *env) {
		e.write(nil, e.peerAddr())
		e.write([]byte{}, e.peerAddr())
		e.write([]byte("x"), e.peerAddr())
		e.peerRead()
		e.peerRead()
		e.peerRead()
	}},
	{name: "WriteSizesAroundIPv4Limit", run: func(e *env) {
		e.write(seq(maxPayload4), e.peerAddr())
		e.write(seq(maxPayload4+1), e.peerAddr())
		e.writeAddrPort(seq(maxPayload4+1), e.peerAddr().AddrPort())
		e.write([]byte("after"), e.peerAddr())
		e.peerRead()
		e.peerRead()
		e.peerExpectNothing()
	}},
	{name: "WriteBadAddresses", run: func(e *env) {
		pa := e.peerAddr()
		e.write([]byte("first"), pa)
		e.write([]byte("x"), nil)
		e.write([]byte("x"), (*net.UDPAddr)(nil))
		e.write([]byte("x"), &net.TCPAddr{IP: pa.IP, Port: pa.Port})
		e.write([]byte("x"), &net.IPAddr{IP: pa.IP})
		e.write([]byte("x"), &net.UDPAddr{IP: net.ParseIP("::1"), Port: pa.Port})
		e.write([]byte("x"), &net.UDPAddr{IP: net.IP{1, 2, 3}, Port: pa.Port})
		e.write([]byte("x"), &net.UDPAddr{IP: pa.IP, Port: -1})
		e.write([]byte("x"), &net.UDPAddr{IP: pa.IP, Port: 70000})
		e.write([]byte("x"), &net.UDPAddr{IP: pa.IP, Port: 0})
		e.writeAddrPort([]byte("x"), netip.AddrPort{})
		e.writeAddrPort([]byte("x"), netip.MustParseAddrPort("[::1]:9"))
		e.writeAddrPort([]byte("x"), netip.AddrPortFrom(pa.AddrPort().Addr(), 0))
		e.write([]byte("16-byte form"), &net.UDPAddr{IP: pa.IP.To16(), Port: pa.Port})
		e.writeAddrPort([]byte("mapped"), netip.AddrPortFrom(netip.AddrFrom16(pa.AddrPort().Addr().As16()), uint16(pa.Port)))
		e.write([]byte("last"), pa)
		for range 4 {
			e.peerRead()
		}
		e.peerExpectNothing()
	}},
	{name: "UDPAddrMethods", run: func(e *env) {
		pa := e.peerAddr()
		e.writeUDP([]byte("via WriteToUDP"), pa)
		e.writeUDP([]byte("x"), nil)
		e.writeUDP([]byte("x"), &net.UDPAddr{IP: net.ParseIP("::1"), Port: pa.Port})
		e.writeUDP([]byte("x"), &net.UDPAddr{IP: pa.IP, Port: 0})
		e.writeUDP([]byte("x"), &net.UDPAddr{IP: pa.IP, Port: 70000})
		e.writeUDP(make([]byte, 70000), pa)
		e.writeUDP([]byte("last"), pa)
		e.peerRead()
		e.peerRead()
		e.peerExpectNothing()
		e.peerSend([]byte("to ReadFromUDP"))
		e.peerSend([]byte("truncated by ReadFromUDP"))
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		e.readUDP(64)
		e.readUDP(4)
		e.conn.SetReadDeadline(time.Now().Add(-time.Second))
		e.readUDP(64)
		e.conn.SetReadDeadline(time.Time{})
		e.conn.Close()
		e.readUDP(64)
		e.writeUDP([]byte("closed"), pa)
	}},
	{name: "ReadMsgUDP", run: func(e *env) {
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range 2 {
			e.peerSend([]byte("first"))
			e.peerSend(seq(100))
			e.peerSend([]byte("third"))
			e.readMsg(64)
			e.readMsg(10)
			e.readMsg(64)
		}
		e.conn.SetReadDeadline(time.Now().Add(-time.Second))
		e.readMsg(64)
		e.conn.SetReadDeadline(time.Time{})
		e.conn.Close()
		e.readMsg(64)
	}},
	{name: "PassedWriteDeadlineFailsWrite", run: func(e *env) {
		e.write([]byte("before"), e.peerAddr())
		e.conn.SetWriteDeadline(time.Now().Add(-time.Second))
		e.write([]byte("during"), e.peerAddr())
		e.writeAddrPort([]byte("during"), e.peerAddr().AddrPort())
		e.conn.SetWriteDeadline(time.Time{})
		e.write([]byte("after"), e.peerAddr())
		e.peerRead()
		e.peerRead()
		e.peerExpectNothing()
	}},
	{name: "WriteKeepsOrder", run: func(e *env) {
		for i := range 200 {
			e.conn.WriteTo([]byte(strconv.Itoa(i)), e.peerAddr())
		}
		for range 200 {
			e.peerRead()
		}
	}},
	{name: "CloseSendsQueuedDatagrams", run: func(e *env) {
		for i := range 50 {
			e.conn.WriteTo([]byte(strconv.Itoa(i)), e.peerAddr())
		}
		e.logf("Close = %s", describe(e.conn.Close()))
		for range 50 {
			e.peerRead()
		}
	}},
	{name: "RequestResponse", run: func(e *env) {
		for i := range 20 {
			e.write([]byte("req"+strconv.Itoa(i)), e.peerAddr())
			e.peerRead()
			e.peerSend([]byte("resp" + strconv.Itoa(i)))
			e.read(64)
		}
	}},
	{name: "DualStackIPv4Peer", net: "udp", addr: "[::]:0", run: func(e *env) {
		port := e.conn.LocalAddr().(*net.UDPAddr).Port
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		e.peerSendTo([]byte("v4"), to)
		e.read(16)
		e.peerSendTo([]byte("v4 again"), to)
		e.readAddrPort(16)
		e.write([]byte("to v4"), e.peerAddr())
		e.writeAddrPort([]byte("to v4 ap"), e.peerAddr().AddrPort())
		e.write([]byte("to 4-byte"), &net.UDPAddr{IP: e.peerAddr().IP.To4(), Port: e.peerAddr().Port})
		e.write([]byte("x"), &net.UDPAddr{IP: net.IPv4zero, Port: e.peerAddr().Port})
		e.write(seq(maxPayload4+1), e.peerAddr())
		for range 4 {
			e.peerRead()
		}
	}},
	{name: "IPv6", net: "udp6", run: func(e *env) {
		e.peerSend([]byte("v6"))
		e.read(16)
		e.peerSend([]byte("v6 ap"))
		e.readAddrPort(16)
		e.write([]byte("to v6"), e.peerAddr())
		e.writeAddrPort([]byte("to v6 ap"), e.peerAddr().AddrPort())
		e.write(seq(maxPayload6), e.peerAddr())
		e.write(seq(maxPayload6+1), e.peerAddr())
		e.write([]byte("to v4"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
		e.writeAddrPort([]byte("to v4"), netip.MustParseAddrPort("127.0.0.1:9"))
		e.peerSend(seq(maxPayload6))
		e.read(70000)
		for range 3 {
			e.peerRead()
		}
		e.peerExpectNothing()
	}},
	{name: "ConnectedSocket", dial: true, run: func(e *env) {
		e.logf("RemoteAddr = %v", e.conn.(net.Conn).RemoteAddr())
		e.peerSend([]byte("from peer"))
		e.read(64)
		e.write([]byte("x"), e.peerAddr())
		e.writeAddrPort([]byte("x"), e.peerAddr().AddrPort())
		e.peerExpectNothing()
	}},
	{name: "ConnectedReadWrite", dial: true, run: func(e *env) {
		e.connWrite([]byte("one"))
		e.connWrite(nil)
		e.connWrite([]byte("three"))
		e.connWrite(seq(maxPayload4 + 1))
		for range 3 {
			e.peerRead()
		}
		e.peerExpectNothing()
		e.peerSend([]byte("a"))
		e.peerSend(seq(100))
		e.peerSend([]byte("c"))
		e.connRead(0) // returns at once, consumes nothing
		e.connRead(-1)
		e.connRead(64)
		e.connRead(10)
		e.connRead(64)
		for i := range 20 {
			e.connWrite([]byte(strconv.Itoa(i)))
			e.peerRead()
			e.peerSend([]byte("r" + strconv.Itoa(i)))
			e.connRead(64)
		}
		e.conn.SetReadDeadline(time.Now().Add(-time.Second))
		e.connRead(64)
		e.conn.SetWriteDeadline(time.Now().Add(-time.Second))
		e.connWrite([]byte("late"))
		e.logf("Close = %s", describe(e.conn.Close()))
		e.connRead(64)
		e.connRead(0)
		e.connWrite([]byte("closed"))
	}},
	{name: "UnconnectedReadWrite", run: func(e *env) {
		e.logf("RemoteAddr = %v", e.conn.(net.Conn).RemoteAddr())
		e.connWrite([]byte("nowhere"))
		e.connWrite(nil)
		e.peerSend([]byte("anyone"))
		e.connRead(64)
		e.peerExpectNothing()
	}},
	{name: "IPv6ConnectedReadWrite", net: "udp6", dial: true, run: func(e *env) {
		e.connWrite(seq(maxPayload6))
		e.connWrite(seq(maxPayload6 + 1))
		e.peerRead()
		e.peerSend([]byte("v6"))
		e.connRead(64)
	}},
}

func TestBehavesLikeUDPConn(t *testing.T) {
	for _, c := range diffCases {
		t.Run(c.name, func(t *testing.T) { runDiff(t, c) })
	}
}
