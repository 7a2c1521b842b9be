package batchconn

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr must match the kernel's struct mmsghdr { struct msghdr
// msg_hdr; unsigned int msg_len; } on every architecture: recvmmsg and
// sendmmsg step through the array by the kernel's size, and write
// msg_len at the kernel's offset.
func TestMmsghdrLayoutMatchesTheKernels(t *testing.T) {
	var h mmsghdr
	want := uintptr(64) // 56-byte msghdr, 4-byte msg_len, 4 of padding
	if unsafe.Sizeof(uintptr(0)) == 4 {
		want = 32 // 28-byte msghdr, 4-byte msg_len
	}
	if got := unsafe.Sizeof(h); got != want {
		t.Errorf("unsafe.Sizeof(mmsghdr{}) = %d, want %d", got, want)
	}
	if got, want := unsafe.Offsetof(h.Len), unsafe.Sizeof(unix.Msghdr{}); got != want {
		t.Errorf("unsafe.Offsetof(mmsghdr.Len) = %d, want unsafe.Sizeof(unix.Msghdr{}) = %d", got, want)
	}
	if got := unsafe.Alignof(h); got != unsafe.Alignof(uintptr(0)) {
		t.Errorf("unsafe.Alignof(mmsghdr{}) = %d, want a pointer's, %d", got, unsafe.Alignof(uintptr(0)))
	}
}
