package main

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPinToCPU pins a goroutine to each allowed CPU in turn, and past the
// last, which wraps round: its thread may then run on that CPU alone.
func TestPinToCPU(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	for n := range allowed.Count() + 1 {
		errc := make(chan error, 1)
		var got unix.CPUSet
		go func() { // the thread stays pinned and ends with the goroutine
			err := pinToCPU(n)
			if err == nil {
				err = unix.SchedGetaffinity(0, &got)
			}
			errc <- err
		}()
		if err := <-errc; err != nil {
			t.Fatalf("pinToCPU(%d): %v", n, err)
		}
		if got.Count() != 1 {
			t.Errorf("pinToCPU(%d): the thread may run on %d CPUs", n, got.Count())
		}
		for cpu := range runtime.NumCPU() * 2 {
			if got.IsSet(cpu) && !allowed.IsSet(cpu) {
				t.Errorf("pinToCPU(%d): CPU %d, which the process may not use", n, cpu)
			}
		}
	}
}
