package batchconn

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// In a namespace whose loopback has an MTU of 1280, a 1400-byte datagram
// sent plainly is fragmented and arrives; as a GSO segment the kernel
// refuses it. The datagrams must still all arrive, once, in order.
func TestGSOFallsBackWhenSegmentExceedsMTU(t *testing.T) {
	ns := newNetns(t)
	ns.setMTU(t, "lo", 1280)
	uc, peer := ns.listenLoopback(t), ns.listenLoopback(t)
	defer peer.Close()
	c := newConn(uc, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer c.Close()

	sizes := repeat(10, 1400)
	sendRun(t, c, peer.LocalAddr(), sizes)
	expectRun(t, peer, sizes)
	s := c.Stats()
	if s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.DatagramsWritten != 10 {
		t.Fatalf("Stats = %+v, want one fallback and all 10 sent", s)
	}
	sendRun(t, c, peer.LocalAddr(), sizes) // offload stays off: no second refusal
	expectRun(t, peer, sizes)
	if s := c.Stats(); s.OffloadFallbacks != 1 || s.DatagramsWritten != 20 {
		t.Fatalf("Stats = %+v, want still one fallback and 20 sent", s)
	}
}

// Kernels and devices without checksum offload refuse GSO with EIO, and
// routes refuse segments longer than their MTU with EINVAL; this kernel
// segments in software instead, so the refusal is injected. After EIO no
// run goes segmented to that destination; after EINVAL for 1000-byte
// segments, the run of 10-byte ones still does.
func TestGSOFallsBackOnInjectedRefusal(t *testing.T) {
	for _, tc := range []struct {
		errno       syscall.Errno
		offloadSent uint64
	}{{syscall.EIO, 0}, {syscall.EINVAL, 3}} {
		errno := tc.errno
		t.Run(errno.Error(), func(t *testing.T) {
			c, peer := queuedPair(t, Config{})
			refused := 0
			injectSendFault(c, func(h *mmsghdr) syscall.Errno {
				if h.Hdr.Controllen > 0 {
					refused++
					return errno
				}
				return 0
			})
			sizes := append(repeat(20, 1000), 10, 10, 10)
			sendRun(t, c, peer.LocalAddr(), sizes)
			expectRun(t, peer, sizes)
			peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := peer.ReadFrom(make([]byte, 2000)); err == nil {
				t.Fatal("a datagram arrived twice")
			}
			if s := c.Stats(); refused != 1 || s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.OffloadSent != tc.offloadSent {
				t.Fatalf("refused %d times, Stats = %+v; want one refusal, one fallback, none lost, %d sent as segments",
					refused, s, tc.offloadSent)
			}
		})
	}
}

// The probe finds the kernel's segment limit: a message of that many
// segments goes, and, where the probe settled for 64, one more does not.
// No kernel takes more than 128.
func TestGSOSegmentLimitIsTheKernels(t *testing.T) {
	limit := gsoSegmentLimit()
	if limit != gsoMaxSegs && limit != gsoMaxSegsProbe {
		t.Fatalf("gsoSegmentLimit() = %d, want %d or %d", limit, gsoMaxSegs, gsoMaxSegsProbe)
	}
	uc, peer := diffCase{}.listen(t)
	defer uc.Close()
	defer peer.Close()
	send := func(segs int) error {
		var oob [oobSpace]byte
		n := putSegSize(oob[:], wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, 1)
		_, _, err := uc.WriteMsgUDP(make([]byte, segs), oob[:n], peer.LocalAddr().(*net.UDPAddr))
		return err
	}
	if err := send(limit); err != nil {
		t.Fatalf("a message of %d segments, the probed limit: %v", limit, err)
	}
	if err := send(limit + 1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a message of %d segments, one over the probed limit: %v, want EINVAL", limit+1, err)
	}
	t.Logf("this kernel takes %d segments a message", limit)
}

// A route whose MTU is smaller than a segment refuses segmented messages
// to that destination only: its datagrams go one by one (the kernel
// fragments them, as plain's), and runs to other destinations keep
// offload. None lost, doubled or reordered.
func TestGSOOffForOneDestinationOnly(t *testing.T) {
	v := newVethPair(t)
	small := net.IPv4(198, 18, 0, 3).To4()
	v.b.ip(t, "addr", "add", small.String()+"/32", "dev", "vb")
	v.a.ip(t, "route", "add", small.String()+"/32", "dev", "va", "mtu", "1280")
	v.a.ip(t, "neigh", "replace", small.String(), "lladdr", "02:00:c6:12:00:02", "dev", "va", "nud", "permanent")

	good := v.b.listen(t, "udp4", v.bIP.String()+":0")
	defer good.Close()
	narrow := v.b.listen(t, "udp4", small.String()+":0")
	defer narrow.Close()
	// In strict order, so that the interleaved datagrams make no runs.
	c := newConn(v.a.listen(t, "udp4", v.aIP.String()+":0"), &Config{MaxDelay: time.Hour, StrictOrder: true}, hooks{idleGap: time.Hour})
	defer c.Close()
	if !c.b().w.io.(*mmsgIO).tx.gso.allowed {
		t.Skip("this kernel has no UDP GSO")
	}

	sizes := repeat(10, 1400)
	for round := 1; round <= 2; round++ {
		for i, size := range sizes {
			for _, dst := range []net.Addr{narrow.LocalAddr(), good.LocalAddr()} {
				if _, err := c.WriteTo(numbered(i, size), dst); err != nil {
					t.Fatalf("WriteTo %d to %v: %v", i, dst, err)
				}
			}
		}
		// Runs: 10 to narrow, then 10 to good.
		for i, size := range sizes {
			if _, err := c.WriteTo(numbered(i, size), narrow.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		for i, size := range sizes {
			if _, err := c.WriteTo(numbered(i, size), good.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("round %d: Flush: %v", round, err)
		}
		for _, rx := range []*net.UDPConn{narrow, good} {
			expectRun(t, rx, sizes) // interleaved, one by one
			expectRun(t, rx, sizes) // the run
		}
		s := c.Stats()
		if s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.DatagramsWritten != uint64(round*40) {
			t.Fatalf("round %d: Stats = %+v, want one fallback, %d written, none failed", round, s, round*40)
		}
		if s.OffloadSent != uint64(round*10) {
			t.Fatalf("round %d: OffloadSent = %d, want %d: the runs to the good destination segmented, none to the narrow one",
				round, s.OffloadSent, round*10)
		}
	}
	// Shorter segments still go segmented to the narrow destination: what
	// its route refused was segments of 1400 bytes (as a path-MTU probe
	// among shorter packets would be).
	short := repeat(10, 1000)
	sendRun(t, c, narrow.LocalAddr(), short)
	expectRun(t, narrow, short)
	if s := c.Stats(); s.OffloadSent != 30 || s.OffloadFallbacks != 1 {
		t.Fatalf("Stats = %+v: want the run of 1000-byte datagrams segmented, no new fallback", s)
	}
	for _, rx := range []*net.UDPConn{narrow, good} {
		rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := rx.ReadFrom(make([]byte, 2000)); err == nil {
			t.Fatalf("%v: a datagram arrived twice", rx.LocalAddr())
		}
	}
}

// A device without transmit checksum offload (here a veth with
// `ethtool -K va tx off`) can neither segment nor checksum a GSO message:
// the kernel does both in software before the device. Kernels before 6.11
// refused such a message with EIO instead (quic-go#3911, quinn#1128),
// until Linux commit 10154dbded6d ("udp: Allow GSO transmit from devices
// with no checksum offload"), and an early bug of that path sent some
// datagrams with only a partial checksum, which the peer discarded
// (fixed since, for stable kernels too). Whichever the kernel does, a GSO
// stream must reach a plain receiver across the device whole: every
// datagram once, in order, none lost.
func TestGSOOverDeviceWithoutChecksumOffload(t *testing.T) {
	requireIproute2(t)
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skipf("needs ethtool on PATH to turn the veth's transmit checksumming off (apt-get install -y ethtool): %v", err)
	}
	v := newVethPair(t)
	v.a.ethtool(t, "-K", "va", "tx", "off")
	requireTxChecksummingOff := func(when string) {
		t.Helper()
		if got := v.a.ethtoolFeature(t, "va", "tx-checksumming"); !strings.HasPrefix(got, "off") {
			t.Fatalf("%s: ethtool -k va says tx-checksumming: %s, want off", when, got)
		}
	}
	requireTxChecksummingOff("before the stream")
	t.Logf("va: tx-checksumming: off, tx-udp-segmentation: %s, generic-segmentation-offload: %s",
		v.a.ethtoolFeature(t, "va", "tx-udp-segmentation"), v.a.ethtoolFeature(t, "va", "generic-segmentation-offload"))

	rx := v.b.listen(t, "udp4", v.bIP.String()+":0")
	// Room for most of the stream (64 MiB: the kernel doubles the figure,
	// forced past net.core.rmem_max), and a reader draining it as it
	// comes: a reader the race detector or the machine's load holds back
	// must not make the kernel drop.
	setsockoptInt(t, rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
	c := newConn(v.a.listen(t, "udp4", v.aIP.String()+":0"), &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer c.Close()
	requireBatching(t, c)
	if !c.b().w.io.(*mmsgIO).tx.gso.allowed { // whether the kernel takes GSO is learnt at the first write
		t.Skip("batchconn keeps GSO off here (Config, BATCHCONN_DISABLE or the kernel's release)")
	}

	const n, size = 20000, 1200
	sizes := repeat(n, size)
	before := v.b.snmp(t)
	rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	var (
		arrived int    // datagrams read in order, before any problem
		problem string // the first datagram out of place, or the read error
	)
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		p := make([]byte, 2*size)
		for arrived < n {
			m, _, err := rx.ReadFrom(p)
			if err != nil {
				problem = err.Error()
				return
			}
			if want := numbered(arrived, size); string(p[:m]) != string(want) {
				which, _, _ := strings.Cut(string(p[:min(m, 12)]), ":")
				problem = fmt.Sprintf("got datagram %q (%d bytes %.12q...), want %d (%d bytes %.12q...)",
					which, m, p[:m], arrived, size, want)
				return
			}
			arrived++
		}
		// Nothing after the last: a datagram sent twice would show here.
		rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if m, _, err := rx.ReadFrom(p); err == nil {
			problem = fmt.Sprintf("a datagram after the last: %d bytes %.12q...", m, p[:m])
		}
	}()

	start := time.Now()
	sendRun(t, c, rx.LocalAddr(), sizes)
	<-rdone
	elapsed := time.Since(start)
	k := v.b.snmp(t).sub(before)
	s := c.Stats()
	if problem != "" {
		t.Fatalf("after %d of %d datagrams in order: %s\nreceiver's namespace: %v, InCsumErrors=%d\nsender Stats = %+v",
			arrived, n, problem, k, k.udp["InCsumErrors"], s)
	}
	requireTxChecksummingOff("after the stream")

	if s.WriteFailures != 0 || s.DatagramsWritten != n {
		t.Fatalf("sender Stats = %+v, want %d datagrams written, none failed", s, n)
	}
	kernel, _ := parseKernelRelease(kernelRelease())
	switch {
	case s.OffloadSent > 0 && s.OffloadFallbacks == 0:
	case s.OffloadSent == 0 && s.OffloadFallbacks == 1 && kernel.compare(kernelVersion{major: 6, minor: 11}) < 0:
		t.Logf("kernel %s refused GSO over a device without checksum offload, as before 6.11: sent one by one", kernelRelease())
	default:
		t.Fatalf("sender Stats = %+v, want the datagrams sent as GSO segments, with no fallback", s)
	}
	t.Logf("%d datagrams of %d B in %v: %d as segments in %d calls; receiver's namespace: %v",
		n, size, elapsed.Round(time.Millisecond), s.OffloadSent, s.WriteCalls, k)
}

// ethtool runs ethtool in the namespace.
func (ns *netns) ethtool(t *testing.T, args ...string) string {
	t.Helper()
	return runCmd(t, "ip", append([]string{"netns", "exec", ns.name, "ethtool"}, args...)...)
}

// ethtoolFeature returns the state `ethtool -k dev` gives for feature:
// "on", "off", "off [fixed]"...
func (ns *netns) ethtoolFeature(t *testing.T, dev, feature string) string {
	t.Helper()
	out := ns.ethtool(t, "-k", dev)
	for _, line := range strings.Split(out, "\n") {
		if name, state, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && name == feature {
			return state
		}
	}
	t.Fatalf("ethtool -k %s lists no %s:\n%s", dev, feature, out)
	return ""
}
