package batchconn

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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
	c := New(v.a.listen(t, "udp4", v.aIP.String()+":0"), &Config{idleGap: time.Hour, MaxDelay: time.Hour})
	defer c.Close()
	requireBatching(t, c)
	if !c.bio.(*mmsgIO).offload { // whether the kernel takes GSO is learnt at the first write
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
func (ns *namedNetns) ethtool(t *testing.T, args ...string) string {
	t.Helper()
	return runCmd(t, "ip", append([]string{"netns", "exec", ns.name, "ethtool"}, args...)...)
}

// ethtoolFeature returns the state `ethtool -k dev` gives for feature:
// "on", "off", "off [fixed]"...
func (ns *namedNetns) ethtoolFeature(t *testing.T, dev, feature string) string {
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
