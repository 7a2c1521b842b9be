package batchconn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Network namespaces of the test's own, made with iproute2: one with
// only its loopback, or two joined by a veth pair, with what tests add (a
// tbf qdisc, routes with their own MTU, nftables rules, a device's MTU).
// Sockets are opened in a namespace from a goroutine locked to a thread
// that joined it with setns; that thread lives in the namespace and ends
// with the goroutine.

// A netns is a network namespace made with `ip netns add`. With only its
// loopback, sockets made in it can reach nothing else: a destination
// outside 127.0.0.0/8 is refused by the kernel with ENETUNREACH, and no
// traffic leaves the machine.
type netns struct {
	name string
	do   chan func()
}

var netnsSeq atomic.Int32

// netnsNamePrefix marks the namespaces of this package's tests; the pid after
// it tells a leftover of a test process that died from one in use.
const netnsNamePrefix = "bctest-"

// requireIproute2 skips the test where namespaces with veth pairs cannot
// be made: not root, or no `ip`/`tc` binary.
func requireIproute2(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces, veth pairs and qdiscs (CI runs as root)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %q on PATH (apt-get install -y iproute2 nftables): %v", tool, err)
		}
	}
}

// sweepStaleNetns deletes namespaces left by test processes that died
// before their cleanup ran (a timeout, a kill).
func sweepStaleNetns() {
	names, _ := filepath.Glob("/var/run/netns/" + netnsNamePrefix + "*")
	for _, path := range names {
		name := filepath.Base(path)
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, netnsNamePrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == nil || errors.Is(unix.Kill(pid, 0), unix.EPERM) {
			continue // its process is alive
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// newNetns makes a namespace with its loopback up; t.Cleanup deletes
// it, and with it every device, route, qdisc and nftables table in it. It
// needs root and iproute2, and skips the test where it has neither.
func newNetns(t *testing.T) *netns {
	t.Helper()
	requireIproute2(t)
	sweepStaleNetns()
	name := fmt.Sprintf("%s%d-%d", netnsNamePrefix, os.Getpid(), netnsSeq.Add(1))
	runCmd(t, "ip", "netns", "add", name)
	ns := &netns{name: name, do: make(chan func())}
	t.Cleanup(func() {
		if ns.do != nil {
			close(ns.do)
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	errc := make(chan error)
	go func() {
		// Never unlocked: the thread now belongs to the namespace, and
		// the runtime ends it with this goroutine.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + name)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		errc <- err
		if err != nil {
			return
		}
		for f := range ns.do {
			f()
		}
	}()
	if err := <-errc; err != nil {
		ns.do = nil
		t.Fatalf("join namespace %s: %v", name, err)
	}
	ns.ip(t, "link", "set", "lo", "up")
	return ns
}

// runCmd runs a command and fails the test with its output if it fails.
func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs `ip -n <ns> args...`.
func (ns *netns) ip(t *testing.T, args ...string) string {
	t.Helper()
	return runCmd(t, "ip", append([]string{"-n", ns.name}, args...)...)
}

// tc runs `tc -n <ns> args...`.
func (ns *netns) tc(t *testing.T, args ...string) string {
	t.Helper()
	requireIproute2(t, "tc")
	return runCmd(t, "tc", append([]string{"-n", ns.name}, args...)...)
}

// nft loads an nftables ruleset into the namespace (`nft -f -`). Tables
// go with the namespace; the test skips where nft is missing.
func (ns *netns) nft(t *testing.T, ruleset string) {
	t.Helper()
	requireIproute2(t, "nft")
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f in %s: %v\n%s\nruleset:\n%s", ns.name, err, out, ruleset)
	}
}

// inNetns runs f on the namespace's thread and returns its error.
func (ns *netns) inNetns(f func() error) error {
	errc := make(chan error, 1)
	ns.do <- func() { errc <- f() }
	return <-errc
}

// listen opens a UDP socket in the namespace.
func (ns *netns) listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	var uc *net.UDPConn
	err := ns.inNetns(func() error {
		la, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return err
		}
		uc, err = net.ListenUDP(network, la)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns.name, err)
	}
	t.Cleanup(func() { uc.Close() })
	return uc
}

// snmp reads the namespace's own UDP counters.
func (ns *netns) snmp(t *testing.T) kernelCounters {
	t.Helper()
	var k kernelCounters
	if err := ns.inNetns(func() (err error) { k, err = readKernelCounters(); return }); err != nil {
		t.Fatal(err)
	}
	return k
}

// steerToOneCPU has every packet dev receives processed on CPU 0 (RPS).
// Without it the kernel itself may reorder datagrams: a received packet
// waits in the backlog of the CPU that handed it over (the sender's, or
// the one where a qdisc's timer fired), and when a later packet is handed
// over on another CPU whose backlog is processed first, it overtakes. On
// an idle machine that is rare; under load it happens. Tests that check
// order must not count the kernel's reordering as batchconn's.
func (ns *netns) steerToOneCPU(t *testing.T, dev string) {
	t.Helper()
	// `ip netns exec` mounts a sysfs that shows the namespace's devices.
	cmd := exec.Command("ip", "netns", "exec", ns.name, "sh", "-c",
		"echo 1 > /sys/class/net/"+dev+"/queues/rx-0/rps_cpus")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot steer %s's packets to one CPU (rps_cpus), so the kernel may reorder them: %v: %s", dev, err, out)
	}
}

// newLoopbackNetns makes a namespace with only its loopback, which keeps
// the order of datagrams (steerToOneCPU).
func newLoopbackNetns(t *testing.T) *netns {
	t.Helper()
	ns := newNetns(t)
	ns.steerToOneCPU(t, "lo")
	return ns
}

// listenLoopback opens a UDP socket on 127.0.0.1 in the namespace.
func (ns *netns) listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	return ns.listen(t, "udp4", "127.0.0.1:0")
}

// setMTU sets a device's MTU inside the namespace.
func (ns *netns) setMTU(t *testing.T, name string, mtu int) {
	t.Helper()
	var err error
	done := make(chan struct{})
	ns.do <- func() {
		defer close(done)
		var fd int
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return
		}
		defer unix.Close(fd)
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(name); err != nil {
			return
		}
		ifr.SetUint32(uint32(mtu))
		err = unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr)
	}
	<-done
	if err != nil {
		t.Fatalf("set MTU of %s: %v", name, err)
	}
}

// A vethPair is two namespaces joined by a veth pair: device "va" with
// address aIP in a, "vb" with bIP in b, both in 198.18.0.0/24.
type vethPair struct {
	a, b     *netns
	aIP, bIP net.IP
}

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	a, b := newNetns(t), newNetns(t)
	v := &vethPair{a: a, b: b, aIP: net.IPv4(198, 18, 0, 1).To4(), bIP: net.IPv4(198, 18, 0, 2).To4()}
	const macA, macB = "02:00:c6:12:00:01", "02:00:c6:12:00:02"
	runCmd(t, "ip", "link", "add", "va", "address", macA, "netns", a.name, "type", "veth",
		"peer", "name", "vb", "address", macB, "netns", b.name)
	a.ip(t, "addr", "add", "198.18.0.1/24", "dev", "va")
	b.ip(t, "addr", "add", "198.18.0.2/24", "dev", "vb")
	a.ip(t, "link", "set", "va", "up")
	b.ip(t, "link", "set", "vb", "up")
	// Neighbours known from the start: while ARP resolves, the kernel
	// holds the first datagrams back and may let later ones overtake them.
	a.ip(t, "neigh", "replace", "198.18.0.2", "lladdr", macB, "dev", "va", "nud", "permanent")
	b.ip(t, "neigh", "replace", "198.18.0.1", "lladdr", macA, "dev", "vb", "nud", "permanent")
	a.steerToOneCPU(t, "va")
	b.steerToOneCPU(t, "vb")
	a.steerToOneCPU(t, "lo")
	b.steerToOneCPU(t, "lo")
	return v
}

// kernelCounters are a namespace's UDP counters (/proc/net/snmp "Udp:")
// and the drops of its devices (/proc/net/dev), read from a thread in it:
// /proc/net is the namespace of the process's main thread, so the reads
// go through /proc/thread-self.
type kernelCounters struct {
	udp     map[string]int64
	devDrop int64 // receive and transmit drops of every device
}

func readKernelCounters() (kernelCounters, error) {
	k := kernelCounters{udp: map[string]int64{}}
	snmp, err := os.ReadFile("/proc/thread-self/net/snmp")
	if err != nil {
		return k, err
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(snmp))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				k.udp[names[i]], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	if names == nil {
		return k, fmt.Errorf("no Udp: lines in /proc/thread-self/net/snmp")
	}
	dev, err := os.ReadFile("/proc/thread-self/net/dev")
	if err != nil {
		return k, err
	}
	// Inter-|   Receive                                                |  Transmit
	//  face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...
	for _, line := range strings.Split(string(dev), "\n") {
		_, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) < 12 {
			continue
		}
		rx, _ := strconv.ParseInt(f[3], 10, 64)
		tx, _ := strconv.ParseInt(f[11], 10, 64)
		k.devDrop += rx + tx
	}
	return k, nil
}

// sub returns the counters' growth since before.
func (k kernelCounters) sub(before kernelCounters) kernelCounters {
	d := kernelCounters{udp: map[string]int64{}, devDrop: k.devDrop - before.devDrop}
	for name, v := range k.udp {
		d.udp[name] = v - before.udp[name]
	}
	return d
}

func (k kernelCounters) String() string {
	return fmt.Sprintf("Udp InDatagrams=%d InErrors=%d RcvbufErrors=%d NoPorts=%d OutDatagrams=%d SndbufErrors=%d; device drops=%d",
		k.udp["InDatagrams"], k.udp["InErrors"], k.udp["RcvbufErrors"], k.udp["NoPorts"],
		k.udp["OutDatagrams"], k.udp["SndbufErrors"], k.devDrop)
}

// setsockoptInt sets an integer socket option on a *net.UDPConn.
func setsockoptInt(t *testing.T, uc *net.UDPConn, level, opt, value int) {
	t.Helper()
	rc, err := uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, value) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("setsockopt(%d, %d, %d): %v", level, opt, value, os.NewSyscallError("setsockopt", serr.(syscall.Errno)))
	}
}
