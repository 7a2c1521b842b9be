package batchconn

import (
	"strconv"
	"strings"
)

// Kernel gates: which offloads the running Linux kernel is known to do
// right, decided from its release string (uname -r) alone. The decisions
// are pure functions of the string, so that every boundary can be tested
// without the kernel in question; kernel_linux.go reads the real one.
//
// Distribution kernels carry backports under an old version number
// (RHEL 8's 4.18.0-553 is not the 4.18 of 2018), so a version says less
// than it seems. Each gate below is set where field reports put it, and
// errs towards turning an offload off: that costs throughput, never a
// datagram.

// kernelVersion is a kernel release as major.minor.patch, and whether it
// is a release candidate ("-rcN"), which comes before the release it names.
type kernelVersion struct {
	major, minor, patch int
	rc                  int // the N of "-rcN"; 0 for a release
}

// parseKernelRelease reads the leading "major.minor[.patch]" of a release
// string such as "6.8.0-51-generic", "7.0.2-6-pve" or
// "4.18.0-553.el8_10.x86_64"; whatever follows is the distribution's
// suffix, of which only "-rcN" is understood. ok is false when the string
// does not start that way, or a number is absurdly large.
func parseKernelRelease(s string) (v kernelVersion, ok bool) {
	var nums [3]int
	k, i := 0, 0
	for k < len(nums) {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == i {
			break // only at the start: the loop goes on only to a digit
		}
		if j-i > 6 {
			return kernelVersion{}, false // a number no kernel has
		}
		nums[k], _ = strconv.Atoi(s[i:j])
		k++
		i = j
		if k == len(nums) || i+1 >= len(s) || s[i] != '.' || !isDigit(s[i+1]) {
			break // "6.1-rc2" has no patch level: 0
		}
		i++ // the dot
	}
	if k < 2 {
		return kernelVersion{}, false // "", "6", "6.x", "v6.1": no major.minor
	}
	v = kernelVersion{major: nums[0], minor: nums[1], patch: nums[2]}
	if rest, ok := strings.CutPrefix(s[i:], "-rc"); ok {
		j := 0
		for j < len(rest) && isDigit(rest[j]) {
			j++
		}
		if n, err := strconv.Atoi(rest[:j]); err == nil && j <= 6 {
			v.rc = n
		}
	}
	return v, true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// compare orders two versions: negative if v comes before w, 0 if they
// are the same, positive if after. A release candidate comes before the
// release of the same number.
func (v kernelVersion) compare(w kernelVersion) int {
	switch {
	case v.major != w.major:
		return v.major - w.major
	case v.minor != w.minor:
		return v.minor - w.minor
	case v.patch != w.patch:
		return v.patch - w.patch
	case v.rc == w.rc:
		return 0
	case v.rc == 0:
		return 1
	case w.rc == 0:
		return -1
	}
	return v.rc - w.rc
}

// The boundaries, as versions.
var (
	// GSO from 5.0. UDP_SEGMENT exists from 4.18, but segmentation
	// offload there is catastrophically slow in the field (RHEL 8's 4.18,
	// quic-go#4394), and quic-go refuses GSO before 5 (quic-go#4456):
	// bugs fixed upstream live on in kernels that are never updated.
	gsoFrom = kernelVersion{major: 5}

	// GRO from 5.12, as wireguard-go (c92064f): before Linux 98184612aca0
	// (5.12) getsockopt(UDP_GRO) failed while setsockopt took it, and
	// UDP_GRO was "kind of buggy anyway" on older kernels. batchconn
	// trusts setsockopt's result, so the first does not hit it; the
	// second does, and a receive offload that goes wrong corrupts what
	// the caller reads, where refusing it costs only speed. (5.10.y and
	// 5.11.y got the getsockopt fix, but a version cannot tell which.)
	groFrom = kernelVersion{major: 5, minor: 12}

	// Equal-length GSO runs are mangled from 7.0-rc1 through 7.1.4: Linux
	// b10b446 corrupts the UDP header and checksum of a segmented message
	// whose segments all have one length, on many NICs and virtio
	// devices, and the receiver drops it silently (tailscale#19777; fixed
	// by 78effd8 and 5f17ae0, in 7.1.5 as tailscale#21335 quotes). Ubuntu
	// 26.04 LTS and Proxmox 9 ship such kernels ("7.0.2-6-pve"); those
	// that carry the fix (7.0.14-pve, tailscale#20994) pay for a cheap
	// rule (gsoRunMustSplit). The same collapse on 6.17 KVM/virtio guests
	// (tailscale#21335) comes from a kernel no version gate can see:
	// BATCHCONN_DISABLE=gso is the answer there.
	equalRunsFrom  = kernelVersion{major: 7, rc: 1}
	equalRunsUntil = kernelVersion{major: 7, minor: 1, patch: 4}
)

// kernelGates is what the running kernel may be asked to do.
type kernelGates struct {
	gso bool // send runs as one segmented message (UDP_SEGMENT)
	gro bool // let the kernel coalesce received datagrams (UDP_GRO)

	// equalRunsUnsafe: a segmented message must never have all its
	// segments of one length; see gsoRunMustSplit.
	equalRunsUnsafe bool
}

// gatesFor decides the gates from a kernel release string. A release
// that cannot be read turns both offloads off: it is no kernel we know
// (or uname failed), and offload on the wrong kernel loses or corrupts
// datagrams silently, while batching without it only costs speed.
// quic-go does the same (an unreadable release counts as 0.0, before 5).
func gatesFor(release string) kernelGates {
	v, ok := parseKernelRelease(release)
	if !ok {
		// (equalRunsUnsafe too, should GSO ever be forced on: the
		// conservative answer to every question.)
		return kernelGates{equalRunsUnsafe: true}
	}
	return kernelGates{
		gso:             v.compare(gsoFrom) >= 0,
		gro:             v.compare(groFrom) >= 0,
		equalRunsUnsafe: v.compare(equalRunsFrom) >= 0 && v.compare(equalRunsUntil) <= 0,
	}
}
