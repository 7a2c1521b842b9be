package batchconn

import "golang.org/x/sys/unix"

// kernelRelease returns the running kernel's release string, as uname -r
// prints it, or "" if uname fails (then every offload stays off). A
// variable, so that tests can pretend to run on another kernel.
var kernelRelease = func() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
