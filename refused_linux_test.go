package batchconn

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A seccomp filter that refuses recvmmsg and sendmmsg, as a sandbox or a
// kernel without them would: every conn goes on one datagram at a time
// through plain, losing and failing nothing. The filter binds the whole
// process, so each case runs in a child process of the test binary.
func TestBatchCallsRefusedFallBackToPlain(t *testing.T) {
	if errno := os.Getenv("BATCHCONN_TEST_REFUSE"); errno != "" {
		refusedChild(t, errno)
		return
	}
	if seccompArch() == 0 {
		t.Skip("no seccomp filter written for " + runtime.GOARCH)
	}
	for _, errno := range []string{"ENOSYS", "EPERM"} {
		t.Run(errno, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBatchCallsRefusedFallBackToPlain$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "BATCHCONN_TEST_REFUSE="+errno)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child with %s refused: %v\n%s", errno, err, out)
			}
			t.Logf("child:\n%s", out)
		})
	}
}

func refusedChild(t *testing.T, name string) {
	errno := map[string]syscall.Errno{"ENOSYS": unix.ENOSYS, "EPERM": unix.EPERM}[name]
	// Conns made before the filter find out at their first batch call,
	// conns made after it from the process's memory of the refusal.
	a, peer := diffCase{}.listen(t)
	c := newConn(a, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer c.Close()
	defer peer.Close()
	refuseBatchCallsWith(t, errno)

	const n = 50
	for i := range n {
		if _, err := c.WriteTo(numbered(i, 100), peer.LocalAddr()); err != nil {
			t.Fatalf("WriteTo %d: %v", i, err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	expectRun(t, peer, repeat(n, 100))
	for i := range n {
		peer.WriteTo(numbered(i, 100), c.LocalAddr())
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 200)
	for i := range n {
		m, from, err := c.ReadFrom(p)
		if err != nil || string(p[:m]) != string(numbered(i, 100)) || from.String() != peer.LocalAddr().String() {
			t.Fatalf("datagram %d: %q from %v, %v", i, p[:m], from, err)
		}
	}
	if s := c.Stats(); s.WriteFailures != 0 || s.DatagramsWritten != n {
		t.Fatalf("Stats = %+v, want %d written, none failed", s, n)
	}
	if batchRefused.Load() != recvRefused|sendRefused {
		t.Fatalf("refusals remembered: %b, want both", batchRefused.Load())
	}

	// A conn made now never tries: a request and its reply, both ways.
	b, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	d := New(b, nil)
	defer d.Close()
	d.WriteTo([]byte("ping"), peer.LocalAddr())
	readN(t, peer, 1)
	peer.WriteTo([]byte("pong"), d.LocalAddr())
	d.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, _, err := d.ReadFrom(p); err != nil || string(p[:m]) != "pong" {
		t.Fatalf("new conn read %q, %v", p[:m], err)
	}
	fmt.Printf("%s: %d datagrams each way, none lost; a new conn works\n", name, n)
}

// seccompArch is the audit architecture of this build, or 0 where the test
// has no filter for it.
func seccompArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	}
	return 0
}

// refuseBatchCallsWith makes every thread of the process fail recvmmsg and
// sendmmsg with errno.
func refuseBatchCallsWith(t *testing.T, errno syscall.Errno) {
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	refuse := uint32(unix.SECCOMP_RET_ERRNO) | uint32(errno)
	prog := []unix.SockFilter{
		{Code: ldAbs, K: 4}, // seccomp_data.arch
		{Code: jeq, K: seccompArch(), Jt: 1},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ldAbs, K: 0}, // seccomp_data.nr
		{Code: jeq, K: unix.SYS_RECVMMSG, Jt: 2},
		{Code: jeq, K: unix.SYS_SENDMMSG, Jt: 1},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: refuse},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_NO_NEW_PRIVS: %v", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		t.Fatalf("seccomp: %v", e)
	}
}
