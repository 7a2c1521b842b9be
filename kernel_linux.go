package batchconn

import "golang.org/x/sys/unix"

// kernelRelease returns the running kernel's release string, as uname -r
// prints it, or "" if uname fails (then every offload stays off).
func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
