//go:build !linux

package batchconn

// kernelRelease: offload is Linux's alone here; elsewhere there is no
// release to gate on, and every gate stays shut.
func kernelRelease() string { return "" }
