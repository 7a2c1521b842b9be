package batchconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// The message API (ReadMsgUDP and the rest) against plain: what a caller
// reads of each datagram's control messages, for the options a caller
// turns on, must be what plain gives.

// msgConn is the message API of plain and batchconn alike.
type msgConn interface {
	net.PacketConn
	ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error)
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error)
	WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error)
}

// setOpt sets integer socket options through c's SyscallConn, as a
// caller does (x/net's SetControlMessage does the same).
func setOpt(t testing.TB, c net.PacketConn, opts ...[3]int) {
	t.Helper()
	rc, err := c.(interface {
		SyscallConn() (syscall.RawConn, error)
	}).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for _, o := range opts {
			if e := unix.SetsockoptInt(int(fd), o[0], o[1], o[2]); e != nil && serr == nil {
				serr = fmt.Errorf("setsockopt(%d, %d, %d): %w", o[0], o[1], o[2], e)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

// describeControl lists the control messages in oob as a caller sees
// them, each level, type, length and data; a timestamp's data is checked
// for plausibility (within a minute of now) rather than shown.
func describeControl(oob []byte) string {
	hdrLen := align(wordSize+8, wordSize)
	var out []string
	for len(oob) >= hdrLen {
		l := int(cmsgLength(oob, wordSize))
		level := int32(binary.NativeEndian.Uint32(oob[wordSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[wordSize+4:]))
		if l < hdrLen || l > len(oob) {
			out = append(out, fmt.Sprintf("bad(len=%d room=%d)", l, len(oob)))
			break
		}
		data := oob[hdrLen:l]
		desc := fmt.Sprintf("%x", data)
		if level == unix.SOL_SOCKET && typ == unix.SO_TIMESTAMPNS && len(data) == 16 {
			sec := int64(binary.NativeEndian.Uint64(data))
			nsec := int64(binary.NativeEndian.Uint64(data[8:]))
			d := time.Since(time.Unix(sec, nsec))
			desc = fmt.Sprintf("timestamp plausible=%v", d >= -time.Second && d < time.Minute)
		}
		out = append(out, fmt.Sprintf("(%d,%d,len=%d,%s)", level, typ, l, desc))
		next := align(l, wordSize)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return strings.Join(out, " ")
}

// msgCase is one differential case of the message API.
type msgCase struct {
	name    string
	network string // "udp4" (default) or "udp6"
	before  [][3]int
	after   [][3]int
	peerOpt [][3]int // options on the sending peer (TOS, traffic class)
	send    int      // datagrams the peer sends, each 100 bytes
	oob     int      // the caller's oob room, default 256
	buf     int      // the caller's buffer, default 2048
	addrp   bool     // read with ReadMsgUDPAddrPort
}

func (c msgCase) run(t *testing.T, k kind) []string {
	network := c.network
	if network == "" {
		network = "udp4"
	}
	wild, loop := "0.0.0.0:0", "127.0.0.1"
	if network == "udp6" {
		wild, loop = "[::]:0", "::1"
	}
	uc, err := net.ListenUDP(network, mustResolve(t, network, wild))
	if err != nil {
		t.Fatal(err)
	}
	setOpt(t, uc, c.before...)
	conn := k.wrap(uc).(msgConn)
	defer conn.Close()
	setOpt(t, conn, c.after...)
	peer, err := net.ListenUDP(network, mustResolve(t, network, net.JoinHostPort(loop, "0")))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	setOpt(t, peer, c.peerOpt...)
	to := &net.UDPAddr{IP: net.ParseIP(loop), Port: uc.LocalAddr().(*net.UDPAddr).Port}
	for i := range c.send {
		if _, err := peer.WriteToUDP(seqN(100, byte(i)), to); err != nil {
			t.Fatal(err)
		}
	}
	var log []string
	oobRoom, bufRoom := c.oob, c.buf
	if oobRoom == 0 {
		oobRoom = 256
	}
	if bufRoom == 0 {
		bufRoom = 2048
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range c.send {
		b, oob := make([]byte, bufRoom), make([]byte, max(oobRoom, 0)) // -1: none
		var n, oobn, flags int
		var from string
		var err error
		if c.addrp {
			var ap netip.AddrPort
			n, oobn, flags, ap, err = conn.ReadMsgUDPAddrPort(b, oob)
			from = ap.Addr().String()
		} else {
			var ua *net.UDPAddr
			n, oobn, flags, ua, err = conn.ReadMsgUDP(b, oob)
			from = fmt.Sprintf("%s iplen=%d", ua.IP, len(ua.IP))
		}
		log = append(log, fmt.Sprintf("n=%d %s oobn=%d flags=%#x from=%s err=%v control=%s",
			n, digest(b[:n]), oobn, flags, from, err, describeControl(oob[:oobn])))
	}
	return log
}

func seqN(n int, b byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b + byte(i)
	}
	return p
}

func mustResolve(t *testing.T, network, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var msgCases = []msgCase{
	{name: "wildcard, nothing asked for", send: 3},
	{name: "packet info asked after New", after: [][3]int{{unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}, send: 3},
	{name: "packet info asked before New", before: [][3]int{{unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}, send: 3},
	{name: "packet info asked and turned off", after: [][3]int{{unix.IPPROTO_IP, unix.IP_PKTINFO, 1}, {unix.IPPROTO_IP, unix.IP_PKTINFO, 0}}, send: 2},
	{name: "timestamp and packet info", after: [][3]int{{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1}, {unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}, send: 3},
	{name: "TOS", after: [][3]int{{unix.IPPROTO_IP, unix.IP_RECVTOS, 1}}, peerOpt: [][3]int{{unix.IPPROTO_IP, unix.IP_TOS, 0x2e}}, send: 3},
	{name: "TTL and TOS", after: [][3]int{{unix.IPPROTO_IP, unix.IP_RECVTTL, 1}, {unix.IPPROTO_IP, unix.IP_RECVTOS, 1}}, send: 2, addrp: true},
	{name: "short oob cuts the control messages", after: [][3]int{{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1}, {unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}, send: 2, oob: 40},
	{name: "oob shorter than a header", after: [][3]int{{unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}, send: 2, oob: 8},
	{name: "no oob room at all", after: [][3]int{{unix.IPPROTO_IP, unix.IP_RECVTOS, 1}}, send: 2, oob: -1},
	{name: "datagram and control both cut", after: [][3]int{{unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}, send: 2, oob: 20, buf: 10},
	{name: "v6 wildcard, nothing asked for", network: "udp6", send: 3},
	{name: "v6 packet info and traffic class", network: "udp6",
		after:   [][3]int{{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1}, {unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1}},
		peerOpt: [][3]int{{unix.IPPROTO_IPV6, unix.IPV6_TCLASS, 0x0a}}, send: 3},
	{name: "v6 hop limit, addr port", network: "udp6", after: [][3]int{{unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1}}, send: 2, addrp: true},
}

func TestMessageReadsLikeUDPConn(t *testing.T) {
	for _, c := range msgCases {
		t.Run(c.name, func(t *testing.T) {
			compareKinds(t, kinds, func(k kind) []string { return c.run(t, k) })
		})
	}
}

// A datagram that came coalesced with others (GRO) gets its buffer's
// control messages, without UDP_GRO's, as plain gives each datagram its
// own; a peer sending segmented messages makes the conn turn GRO on.
func TestMessageReadsThroughGRO(t *testing.T) {
	opts := [][3]int{{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1}, {unix.IPPROTO_IP, unix.IP_PKTINFO, 1}, {unix.IPPROTO_IP, unix.IP_RECVTOS, 1}}
	compareKinds(t, kinds, func(k kind) []string {
		uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			t.Fatal(err)
		}
		conn := k.wrap(uc).(msgConn)
		setOpt(t, conn, opts...)
		peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		setOpt(t, peer, [3]int{unix.IPPROTO_IP, unix.IP_TOS, 0x01})
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: uc.LocalAddr().(*net.UDPAddr).Port}
		var log []string
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for round := range 6 {
			// 10 segments of 100 bytes, the last 50, in one message.
			p := append(seqN(900, byte(round)), seqN(50, byte(round))...)
			var oob [32]byte
			k := putSegSize(oob[:], wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, 100)
			if _, _, err := peer.WriteMsgUDP(p, oob[:k], to); err != nil {
				t.Fatal(err)
			}
			for range 10 {
				b, oob := make([]byte, 2048), make([]byte, 256)
				n, oobn, flags, ua, err := conn.ReadMsgUDP(b, oob)
				log = append(log, fmt.Sprintf("n=%d %s oobn=%d flags=%#x from=%s err=%v control=%s",
					n, digest(b[:n]), oobn, flags, ua.IP, err, describeControl(oob[:oobn])))
			}
		}
		if bc, ok := conn.(*PacketConn); ok && k.name == "batchconn" {
			if st := bc.Stats(); st.OffloadReceived == 0 {
				t.Errorf("%s: no datagram came coalesced (%+v): the GRO path did not run", k.name, st)
			}
		}
		conn.Close()
		peer.Close()
		return log
	})
}

// ReadBatch serves x/net's batch shape: message by message what x/net's
// own ReadBatch gives on plain (how many come per call may differ: the
// ring hands over what it holds).
func TestReadBatchLikeXNet(t *testing.T) {
	compareKinds(t, kinds, func(k kind) []string {
		uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			t.Fatal(err)
		}
		conn := k.wrap(uc)
		setOpt(t, conn, [3]int{unix.IPPROTO_IP, unix.IP_PKTINFO, 1}, [3]int{unix.IPPROTO_IP, unix.IP_RECVTOS, 1})
		var rb interface {
			ReadBatch([]ipv4.Message, int) (int, error)
		}
		if k.name == "plain" {
			rb = ipv4.NewPacketConn(uc)
		} else {
			rb = conn.(*PacketConn)
		}
		peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: uc.LocalAddr().(*net.UDPAddr).Port}
		const total = 40
		for i := range total {
			if _, err := peer.WriteToUDP(seqN(20+i*37, byte(i)), to); err != nil {
				t.Fatal(err)
			}
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var log []string
		for read := 0; read < total; {
			ms := make([]ipv4.Message, 8)
			for i := range ms {
				// Two buffers (the second short, so that long datagrams
				// are cut), room for control messages.
				ms[i].Buffers = [][]byte{make([]byte, 300), make([]byte, 400)}
				ms[i].OOB = make([]byte, 128)
			}
			n, err := rb.ReadBatch(ms, 0)
			if err != nil || n < 1 || n > len(ms) {
				t.Fatalf("%s: ReadBatch = %d, %v", k.name, n, err)
			}
			for _, m := range ms[:n] {
				ua := m.Addr.(*net.UDPAddr)
				data := append(append([]byte(nil), m.Buffers[0]...), m.Buffers[1]...)
				log = append(log, fmt.Sprintf("N=%d %s NN=%d Flags=%#x Addr=%s iplen=%d control=%s",
					m.N, digest(data[:min(m.N, len(data))]), m.NN, m.Flags, ua.IP, len(ua.IP), describeControl(m.OOB[:m.NN])))
			}
			read += n
		}
		conn.Close()
		peer.Close()
		return log
	})
	c, peer := queuedPair(t, Config{})
	defer peer.Close()
	if _, err := c.ReadBatch(make([]ipv4.Message, 1), unix.MSG_DONTWAIT); err == nil || !strings.Contains(err.Error(), "no flags") {
		t.Errorf("ReadBatch with flags = %v, want an error saying it takes none", err)
	}
	if n, err := c.ReadBatch(nil, 0); n != 0 || err != nil {
		t.Errorf("ReadBatch of no messages = %d, %v", n, err)
	}
}

// x/net's ipv4.PacketConn on a conn sets options (SetControlMessage
// worked in ExamplePacketConn_ReadMsgUDP) but cannot read or write the
// descriptor: where the refusal is the conn's, its error is one line
// naming the conn's own calls.
func TestXNetPacketConnSaysWhatToCall(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	defer peer.Close()
	xc := ipv4.NewPacketConn(c)
	ms := []ipv4.Message{{Buffers: [][]byte{make([]byte, 10)}, Addr: peer.LocalAddr()}}
	_, werr := xc.WriteTo([]byte("x"), nil, peer.LocalAddr())
	_, bwerr := xc.WriteBatch(ms, 0)
	_, brerr := xc.ReadBatch(ms, 0)
	for _, err := range []error{werr, bwerr, brerr} {
		if err == nil || !errors.Is(err, errors.ErrUnsupported) || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "ReadBatch") || !strings.Contains(err.Error(), "WriteMsgUDP") {
			t.Errorf("x/net through the descriptor: %q, want one line wrapping ErrUnsupported, naming the conn's calls", err)
		}
	}
	// Reading, x/net itself refuses a conn that is not a *net.UDPConn.
	if _, _, _, err := xc.ReadFrom(make([]byte, 10)); err == nil {
		t.Error("x/net's ReadFrom on a conn succeeded")
	}
}
