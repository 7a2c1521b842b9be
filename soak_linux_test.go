package batchconn

import (
	"os"
	"testing"
)

// The soak runs in a namespace of its own on Linux, where the kernel's
// drops can be counted.
func init() {
	soakNetwork = func(t *testing.T) soakNet {
		if os.Geteuid() != 0 {
			t.Log("not root: the soak runs on the host's loopback, where the kernel's drops cannot be counted")
			return loopbackNet()
		}
		ns := newLoopbackNetns(t)
		return soakNet{
			listen: ns.listenLoopback,
			// At most: a packet the device drops may be a GSO packet
			// of up to gsoMaxSegsProbe datagrams, counted once.
			drops: func(t *testing.T) int64 {
				k := ns.snmp(t)
				return k.udp["InErrors"] + gsoMaxSegsProbe*k.devDrop
			},
		}
	}
}
