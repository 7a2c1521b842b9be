package batchconn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The differential harness: a case runs on a plain *net.UDPConn and on
// each of batchconn's ways of holding a socket (kinds), and what a caller
// observes must be the same on all. The cases are in
// differential_cases_test.go.

// A kind is a way to hold a UDP socket: plain, or one of batchconn's paths.
// Every differential case runs on each and must be observed the same.
type kind struct {
	name string
	wrap func(*net.UDPConn) net.PacketConn
}

var kinds = []kind{
	{"plain", func(uc *net.UDPConn) net.PacketConn { return uc }},
	{"batchconn", func(uc *net.UDPConn) net.PacketConn { return New(uc, nil) }},
	// Every write queued, none sent at once: the batching path, whatever
	// the timing.
	{"queued", func(uc *net.UDPConn) net.PacketConn { return newConn(uc, &Config{}, hooks{idleGap: time.Hour}) }},
	// One datagram at a time, as on systems without recvmmsg/sendmmsg.
	{"single", func(uc *net.UDPConn) net.PacketConn { return newConn(uc, &Config{}, hooks{noBatch: true}) }},
}

// An env is one run of a differential case: the conn under test and a
// plain peer, with a log of what a caller observes.
type env struct {
	t    *testing.T
	conn net.PacketConn
	peer *net.UDPConn
	rep  *strings.Replacer
	log  []string
}

func (e *env) logf(format string, args ...any) {
	e.log = append(e.log, e.rep.Replace(fmt.Sprintf(format, args...)))
}

func (e *env) peerAddr() *net.UDPAddr { return e.peer.LocalAddr().(*net.UDPAddr) }

// read calls ReadFrom on the conn under test and logs the outcome.
func (e *env) read(size int) {
	var p []byte
	if size >= 0 {
		p = make([]byte, size)
	}
	n, addr, err := e.conn.ReadFrom(p)
	e.logf("ReadFrom(%d) = %d %s %s %s", size, n, digest(p[:n]), describeAddr(addr), describe(err))
}

// readAsync starts a read that is expected to block, and returns a func
// that waits for it and logs its outcome, so that the log's order does not
// depend on which goroutine runs first.
func (e *env) readAsync(size int) (wait func()) {
	done := make(chan string, 1)
	go func() {
		p := make([]byte, size)
		n, addr, err := e.conn.ReadFrom(p)
		done <- fmt.Sprintf("blocked ReadFrom(%d) = %d %s %s %s", size, n, digest(p[:n]), describeAddr(addr), describe(err))
	}()
	return func() { e.logf("%s", <-done) }
}

// readAddrPort is read through ReadFromUDPAddrPort.
func (e *env) readAddrPort(size int) {
	p := make([]byte, size)
	n, ap, err := e.conn.(interface {
		ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
	}).ReadFromUDPAddrPort(p)
	e.logf("ReadFromUDPAddrPort(%d) = %d %s %v %s", size, n, digest(p[:n]), ap, describe(err))
}

// readUDP is read through ReadFromUDP.
func (e *env) readUDP(size int) {
	p := make([]byte, size)
	n, ua, err := e.conn.(interface {
		ReadFromUDP([]byte) (int, *net.UDPAddr, error)
	}).ReadFromUDP(p)
	e.logf("ReadFromUDP(%d) = %d %s %s nil=%v %s", size, n, digest(p[:n]), describeAddr(ua), ua == nil, describe(err))
}

// readMsg is read through ReadMsgUDP, with room for control messages
// (none are asked for: plain gives none either).
func (e *env) readMsg(size int) {
	p, oob := make([]byte, size), make([]byte, 64)
	n, oobn, flags, ua, err := e.conn.(interface {
		ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error)
	}).ReadMsgUDP(p, oob)
	e.logf("ReadMsgUDP(%d) = %d %s oobn=%d flags=%#x %s nil=%v %s", size, n, digest(p[:n]), oobn,
		flags, describeAddr(ua), ua == nil, describe(err))
}

// writeUDP is write through WriteToUDP.
func (e *env) writeUDP(p []byte, addr *net.UDPAddr) {
	n, err := e.conn.(interface {
		WriteToUDP([]byte, *net.UDPAddr) (int, error)
	}).WriteToUDP(p, addr)
	e.logf("WriteToUDP(%d, %s) = %d %s", len(p), describeAddr(addr), n, describe(err))
}

func (e *env) write(p []byte, addr net.Addr) {
	n, err := e.conn.WriteTo(p, addr)
	e.logf("WriteTo(%d, %s) = %d %s", len(p), describeAddr(addr), n, describe(err))
}

func (e *env) writeAddrPort(p []byte, ap netip.AddrPort) {
	n, err := e.conn.(interface {
		WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
	}).WriteToUDPAddrPort(p, ap)
	e.logf("WriteToUDPAddrPort(%d, %v) = %d %s", len(p), ap, n, describe(err))
}

// connRead and connWrite use the conn as a net.Conn, as callers of a
// connected socket do.
func (e *env) connRead(size int) {
	var p []byte
	if size >= 0 {
		p = make([]byte, size)
	}
	n, err := e.conn.(net.Conn).Read(p)
	e.logf("Read(%d) = %d %s %s", size, n, digest(p[:n]), describe(err))
}

func (e *env) connWrite(p []byte) {
	n, err := e.conn.(net.Conn).Write(p)
	e.logf("Write(%d) = %d %s", len(p), n, describe(err))
}

// peerSend sends from the plain peer to the conn under test.
func (e *env) peerSend(p []byte) {
	if _, err := e.peer.WriteTo(p, e.conn.LocalAddr()); err != nil {
		e.t.Fatalf("peer send: %v", err)
	}
}

// peerSendTo is peerSend to an explicit address of the conn.
func (e *env) peerSendTo(p []byte, to net.Addr) {
	if _, err := e.peer.WriteTo(p, to); err != nil {
		e.t.Fatalf("peer send: %v", err)
	}
}

// peerRead logs what the peer receives within a second, or that nothing came.
func (e *env) peerRead() {
	p := make([]byte, 70000)
	e.peer.SetReadDeadline(time.Now().Add(time.Second))
	n, addr, err := e.peer.ReadFrom(p)
	if err != nil {
		e.logf("peer received nothing: %s", describe(err))
		return
	}
	e.logf("peer received %d %s from %s", n, digest(p[:n]), describeAddr(addr))
}

// peerExpectNothing logs whether anything reached the peer in a short wait.
func (e *env) peerExpectNothing() {
	p := make([]byte, 70000)
	e.peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, _, err := e.peer.ReadFrom(p)
	if err == nil {
		e.logf("peer unexpectedly received %d %s", n, digest(p[:n]))
	}
}

// digest shows short payloads in full and long ones by length and sum.
func digest(p []byte) string {
	if len(p) <= 16 {
		return fmt.Sprintf("%q", p)
	}
	var sum uint32
	for i, b := range p {
		sum = sum*31 + uint32(b) + uint32(i)
	}
	return fmt.Sprintf("[%d bytes sum %08x]", len(p), sum)
}

func describeAddr(a net.Addr) string {
	if a == nil {
		return "addr=nil"
	}
	if ua, ok := a.(*net.UDPAddr); ok {
		if ua == nil {
			return "addr=(*net.UDPAddr)(nil)"
		}
		return fmt.Sprintf("addr=%T(%s,iplen=%d,zone=%q)", a, a, len(ua.IP), ua.Zone)
	}
	return fmt.Sprintf("addr=%T(%s)", a, a)
}

// describe lists what a caller can observe of an error.
func describe(err error) string {
	if err == nil {
		return "err=nil"
	}
	s := fmt.Sprintf("err=%T %q closed=%v deadline=%v", err, err.Error(),
		errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded))
	var oe *net.OpError
	if errors.As(err, &oe) {
		s += fmt.Sprintf(" op=%s net=%s src=%v addr=%v inner=%T timeout=%v",
			oe.Op, oe.Net, oe.Source, oe.Addr, oe.Err, oe.Timeout())
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s += " errno=" + errno.Error()
	}
	return s
}

// A diffCase is a behaviour observed the same on plain and on batchconn.
type diffCase struct {
	name string
	net  string // network of the conn under test, default "udp4"
	addr string // its local address, default "127.0.0.1:0"
	peer string // the peer's address, default 127.0.0.1 or ::1 by net
	dial bool   // connect the conn under test to the peer
	run  func(e *env)
}

func (c diffCase) listen(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	network, addr, peerAddr := c.net, c.addr, c.peer
	if network == "" {
		network = "udp4"
	}
	if addr == "" {
		addr = "127.0.0.1:0"
		if network == "udp6" {
			addr = "[::1]:0"
		}
	}
	if peerAddr == "" {
		peerAddr = "127.0.0.1:0"
		if network == "udp6" {
			peerAddr = "[::1]:0"
		}
	}
	pa, err := net.ResolveUDPAddr("udp", peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp", pa)
	if err != nil {
		t.Fatal(err)
	}
	la, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var uc *net.UDPConn
	if c.dial {
		uc, err = net.DialUDP(network, la, peer.LocalAddr().(*net.UDPAddr))
	} else {
		uc, err = net.ListenUDP(network, la)
	}
	if err != nil {
		t.Fatal(err)
	}
	return uc, peer
}

// runDiff runs c on every kind and compares each log with plain's.
func runDiff(t *testing.T, c diffCase) {
	t.Helper()
	compareKinds(t, kinds, func(k kind) []string { return runKind(t, c, k) })
}

// compareKinds has each of ks, whose first is plain, observed, and
// compares each log with plain's.
func compareKinds(t *testing.T, ks []kind, observe func(k kind) []string) {
	t.Helper()
	var want []string
	for i, k := range ks {
		got := observe(k)
		if i == 0 {
			want = got
			continue
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s differs from plain:\n%s", k.name, lineDiff(want, got))
		}
	}
	if testing.Verbose() {
		t.Logf("observed:\n  %s", strings.Join(want, "\n  "))
	}
}

func runKind(t *testing.T, c diffCase, k kind) []string {
	uc, peer := c.listen(t)
	defer peer.Close()
	return runKindOn(t, uc, peer, k, c.name+": "+k.name, c.run)
}

// runKindOn runs run on k wrapping uc, with peer at the other end, and
// returns the log of what a caller of k observes. The caller made the
// sockets (in a namespace, say) and closes peer. A run that hangs fails
// as "name hung".
func runKindOn(t *testing.T, uc, peer *net.UDPConn, k kind, name string, run func(e *env)) []string {
	t.Helper()
	conn := k.wrap(uc)
	defer conn.Close()
	la := uc.LocalAddr().(*net.UDPAddr)
	pa := peer.LocalAddr().(*net.UDPAddr)
	e := &env{t: t, conn: conn, peer: peer, rep: strings.NewReplacer(
		":"+strconv.Itoa(la.Port), ":LOCALPORT",
		":"+strconv.Itoa(pa.Port), ":PEERPORT",
	)}
	// A case that hangs is unblocked, and fails.
	watchdog := time.AfterFunc(20*time.Second, func() {
		conn.Close()
		peer.Close()
	})
	defer func() {
		if !watchdog.Stop() {
			t.Errorf("%s hung; the watchdog closed its sockets", name)
		}
	}()
	run(e)
	return e.log
}

// diffLogs runs c on each of ks and returns the logs, plain's first.
func diffLogs(t *testing.T, c diffCase, ks []kind) (names []string, logs [][]string) {
	t.Helper()
	for _, k := range ks {
		names = append(names, k.name)
		logs = append(logs, runKind(t, c, k))
	}
	return names, logs
}

// runDiffKinds is runDiff over ks, whose first kind is plain.
func runDiffKinds(t *testing.T, c diffCase, ks []kind) {
	t.Helper()
	compareKinds(t, ks, func(k kind) []string { return runKind(t, c, k) })
}

func lineDiff(want, got []string) string {
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := " "
		if w != g {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s plain: %s\n%s   got: %s\n", mark, w, mark, g)
	}
	return b.String()
}

// waitBlocked gives a goroutine time to block in a read. The outcome does
// not depend on it: if the read has not blocked yet, it sees the change
// when it starts.
func waitBlocked() { time.Sleep(20 * time.Millisecond) }

func seq(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}
