//go:build race

package batchconn

// copyUnseen copies a datagram between the caller's buffer and the ring or
// the queue as the kernel copies it for plain: unseen by the race
// detector. Plain's recvfrom and sendto move the caller's bytes inside the
// system call, which the detector does not instrument (syscall.Recvfrom
// and Sendto carry no race annotations); a copy it saw would be reported
// against any goroutine still reading the previous datagram from the same
// buffer, a pattern that is safe on plain because the network orders the
// two: a reader hands its one buffer to a decoder, whose answer makes the
// peer send the datagram the next read brings.
//
// go:norace leaves this function's loads and stores uninstrumented; the
// copy builtin would call the runtime's instrumented slicecopy. Race
// builds only: elsewhere it is copy.
//
//go:norace
func copyUnseen(dst, src []byte) int {
	n := min(len(dst), len(src))
	i := 0
	for ; i+8 <= n; i += 8 {
		*(*[8]byte)(dst[i:]) = *(*[8]byte)(src[i:])
	}
	for ; i < n; i++ {
		dst[i] = src[i]
	}
	return n
}
