package batchconn

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// GRO costs a kernel-wide switch the first time a socket turns it on, and
// again when the last one closes: only a conn that receives runs from one
// sender turns it on. One that reads a reply at a time, or that receives
// bursts from many senders one datagram each, never does.
func TestGROOnlyForRunsFromOneSender(t *testing.T) {
	c, peer := batchedPair(t, Config{})
	p := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 20 { // replies one at a time
		go func() {
			time.Sleep(100 * time.Microsecond)
			peer.WriteTo([]byte{byte(i)}, c.LocalAddr())
		}()
		if _, _, err := c.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
	}
	many := make([]*net.UDPConn, 16)
	for i := range many {
		many[i], _ = diffCase{}.listen(t)
		defer many[i].Close()
	}
	before := c.Stats()
	for range 8 { // bursts, one datagram from each of 16 senders
		for _, s := range many {
			s.WriteTo([]byte("x"), c.LocalAddr())
		}
		for range many {
			if _, _, err := c.ReadFrom(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v := groSockopt(t, c); v != 0 {
		t.Fatalf("UDP_GRO = %d after single replies and interleaved bursts, want 0", v)
	}
	if s := c.Stats(); s.DatagramsRead-before.DatagramsRead < 2*(s.ReadCalls-before.ReadCalls) {
		t.Fatalf("premise: the bursts were read about a datagram a call: %+v", s)
	}

	tx := newConn(peer, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer tx.Close()
	for range 3 { // a GSO sender's bulk
		sendRun(t, tx, c.LocalAddr(), repeat(64, 1200))
		for range 64 {
			if _, _, err := c.ReadFrom(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v := groSockopt(t, c); v != 1 {
		t.Fatalf("UDP_GRO = %d after a GSO sender's bulk, want 1", v)
	}
	if s := c.Stats(); s.OffloadReceived == 0 {
		t.Fatalf("Stats = %+v: nothing received coalesced once GRO was on", s)
	}
}

// Errors the kernel reports on reads: ICMP errors a peer's firewall
// answers with, on connected sockets and on unconnected ones that asked
// for them (IP_RECVERR).

func TestReadReportsICMPErrorsAsPlain(t *testing.T) {
	v := newVethPair(t)
	// The receiving side answers with as many ICMP errors as asked.
	if err := v.b.inNetns(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/icmp_ratemask", []byte("0"), 0)
	}); err != nil {
		t.Fatalf("lifting the ICMP rate limit in the namespace: %v", err)
	}
	for _, c := range []struct {
		reject  string // nft: reject with icmp type ...
		mode    string // connected, unconnected, recverr (unconnected with IP_RECVERR)
		errno   syscall.Errno
		reports bool
	}{
		{"port-unreachable", "connected", syscall.ECONNREFUSED, true},
		{"prot-unreachable", "connected", syscall.ENOPROTOOPT, true},
		{"admin-prohibited", "connected", syscall.EHOSTUNREACH, true},
		{"net-prohibited", "connected", syscall.ENETUNREACH, true},
		// Not a hard error: the kernel keeps it from a socket without IP_RECVERR.
		{"host-unreachable", "connected", 0, false},
		// An unconnected socket hears no ICMP error ...
		{"port-unreachable", "unconnected", 0, false},
		// ... unless it asks for them.
		{"port-unreachable", "recverr", syscall.ECONNREFUSED, true},
		{"host-unreachable", "recverr", syscall.EHOSTUNREACH, true},
		{"admin-prohibited", "recverr", syscall.EHOSTUNREACH, true},
	} {
		t.Run(c.reject+"/"+c.mode, func(t *testing.T) {
			// One-byte payloads (UDP length 9) from a are refused.
			v.b.nft(t, `table ip bctest
delete table ip bctest
table ip bctest {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr `+v.aIP.String()+` udp length 9 reject with icmp type `+c.reject+`
	}
}
`)
			wait := 200 * time.Millisecond // for an error that must not come
			if c.reports {
				wait = 5 * time.Second
			}
			var want []string
			for _, k := range kinds {
				peer := v.b.listen(t, "udp4", "198.18.0.2:0")
				uc := v.a.listen(t, "udp4", "198.18.0.1:0")
				if c.mode == "connected" {
					uc.Close()
					var err error
					if err = v.a.inNetns(func() error {
						uc, err = net.DialUDP("udp4", &net.UDPAddr{IP: v.aIP}, peer.LocalAddr().(*net.UDPAddr))
						return err
					}); err != nil {
						t.Fatal(err)
					}
				}
				if c.mode == "recverr" {
					setsockoptInt(t, uc, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
				}
				got := runKindOn(t, uc, peer, k, k.name, func(e *env) {
					write, read := func(p []byte) { e.write(p, e.peerAddr()) }, e.read
					if c.mode == "connected" {
						write, read = e.connWrite, e.connRead
					}
					write([]byte("x"))
					e.conn.SetReadDeadline(time.Now().Add(wait))
					read(64)
					e.conn.SetReadDeadline(time.Time{})
					write([]byte("works again"))
					e.peerRead()
					e.peerSend([]byte("reply"))
					read(64)
				})
				peer.Close()
				if k.name == "plain" {
					want = got
					line := want[1]
					if c.reports != strings.Contains(line, "errno="+c.errno.Error()) || !c.reports && !strings.Contains(line, "deadline=true") {
						t.Fatalf("premise: plain's read after a rejected datagram: %s; want errno %v (%v)", line, c.errno, c.reports)
					}
					continue
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s differs from plain:\n%s", k.name, lineDiff(want, got))
				}
			}
			if testing.Verbose() {
				t.Logf("observed:\n  %s", strings.Join(want, "\n  "))
			}
		})
	}
}

// A pending socket error comes before the datagrams the kernel holds:
// plain's next read returns it. Datagrams batchconn already took into its
// ring are not the kernel's any more: they come first, then the error,
// once, and nothing is lost.
func TestPendingErrorWithDatagramsInRing(t *testing.T) {
	c := diffCase{name: "PendingErrorWithDatagramsInRing", dial: true, run: func(e *env) {
		// Bursts first: batchconn's ring grows while the kernel fills it.
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		p := make([]byte, 64)
		for range 4 {
			for i := range 16 {
				e.peerSend([]byte{byte(i)})
			}
			for range 16 {
				if _, _, err := e.conn.ReadFrom(p); err != nil {
					e.t.Fatal(err)
				}
			}
		}
		if c, ok := e.conn.(*PacketConn); ok && c.b() != nil && c.b().r.want < 2 {
			e.t.Fatalf("premise: the ring offers %d slots after bursts, want at least 2", c.b().r.want)
		}
		for _, s := range []string{"a", "b", "c"} {
			e.peerSend([]byte(s))
		}
		e.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		e.connRead(64) // a; batchconn's ring now holds b and c
		e.peer.Close() // nobody listens: the next datagram is refused
		e.connWrite([]byte("to nobody"))
		for range 3 {
			e.connRead(64)
		}
		e.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		e.connRead(64)
	}}
	names, logs := diffLogs(t, c, kinds)
	var divergent []string
	for i, log := range logs {
		// What must hold on every kind: a, b, c in order, the refusal
		// once, then nothing.
		var data []string
		refused := 0
		for _, line := range log {
			if strings.Contains(line, "connection refused") {
				refused++
			}
			if m := regexp.MustCompile(`^Read\(64\) = 1 "(.)"`).FindStringSubmatch(line); m != nil {
				data = append(data, m[1])
			}
		}
		if strings.Join(data, "") != "abc" || refused != 1 || !strings.Contains(log[len(log)-1], "deadline=true") {
			t.Errorf("%s: read %q and %d refusals, want abc and one refusal, then nothing:\n  %s",
				names[i], data, refused, strings.Join(log, "\n  "))
			continue
		}
		if i > 0 && strings.Join(log, "\n") != strings.Join(logs[0], "\n") {
			divergent = append(divergent, fmt.Sprintf("%s differs from plain:\n%s", names[i], lineDiff(logs[0], log)))
		}
	}
	// Where batchconn's ring held b and c when the refusal arrived, it
	// returns them first (documented in the package's Errors section);
	// what must hold on every kind was checked above.
	if len(divergent) > 0 && testing.Verbose() {
		t.Logf("taken into the ring before the error arrived, as documented:\n%s", strings.Join(divergent, "\n"))
	}
}
