package batchconn

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode"
)

// The operator's switch: BATCHCONN_DISABLE turns batchconn's kernel
// features off in a running deployment without a rebuild, the answer to a
// kernel or driver bug nobody has reported yet. Its value is a list of
// words, separated by commas or spaces, in any case:
//
//	gso    no segmentation offload on send (runs go one datagram a message)
//	gro    no receive offload (the kernel hands over one datagram at a time)
//	batch  no batching at all: every conn is served one datagram at a time,
//	       as on systems without recvmmsg/sendmmsg (this implies gso and gro)
//	all    all of the above
//
// Unset or empty disables nothing. The variable is read once per process,
// when the first conn is made.
//
// Why one variable holding a list: quic-go gives one boolean variable per
// feature (QUIC_GO_DISABLE_GSO, QUIC_GO_DISABLE_ECN, read with
// strconv.ParseBool, a malformed value silently ignored), and tailscale
// likewise (TS_DEBUG_DISABLE_UDP_GSO, TS_DEBUG_DISABLE_UDP_GRO, through
// its envknob package, where a malformed boolean ends the process with
// log.Fatalf, documented as a debug knob that may go away). aws/s2n-quic
// takes one list (S2N_QUIC_PLATFORM_FEATURES_OVERRIDE="default,-gso,-gro").
// One name is one thing to document, find in a unit file and grep for,
// and a new word costs no new variable. "DISABLE" in the name keeps the
// defaults when it is unset, so no value ever turns a feature on that
// batchconn would otherwise keep off.
//
// A word it does not know is reported once on standard error, naming the
// variable and the words it takes, and ignored; the words it knows still
// apply. A drop-in library must not end its host process over a typo, as
// tailscale's knob would; nor stay silent, as quic-go's does, while an
// operator who wrote "GSO=off" believes offload is off.
const disableEnv = "BATCHCONN_DISABLE"

// disabled is what the operator turned off.
type disabled struct {
	gso, gro, batch bool
}

// noGSO, noGRO and noBatch are what a conn must honour: batch off takes
// both offloads with it.
func (d disabled) noGSO() bool   { return d.gso || d.batch }
func (d disabled) noGRO() bool   { return d.gro || d.batch }
func (d disabled) noBatch() bool { return d.batch }

// parseDisable reads a BATCHCONN_DISABLE value. unknown holds the words
// it did not know, in order, as written.
func parseDisable(value string) (d disabled, unknown []string) {
	words := strings.FieldsFunc(value, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	for _, w := range words {
		switch strings.ToLower(w) {
		case "gso":
			d.gso = true
		case "gro":
			d.gro = true
		case "batch":
			d.batch = true
		case "all":
			d = disabled{gso: true, gro: true, batch: true}
		default:
			unknown = append(unknown, w)
		}
	}
	return d, unknown
}

// readDisable reads the switch through getenv and reports unknown words
// to report.
func readDisable(getenv func(string) string, report io.Writer) disabled {
	value := getenv(disableEnv)
	d, unknown := parseDisable(value)
	if len(unknown) > 0 {
		fmt.Fprintf(report, "batchconn: %s=%q: ignoring %q: the words it takes are gso, gro, batch and all, separated by commas\n",
			disableEnv, value, unknown)
	}
	return d
}

// newDisableSwitch returns a function that reads the switch on its first
// call and returns the same answer ever after.
func newDisableSwitch(getenv func(string) string, report io.Writer) func() disabled {
	return sync.OnceValue(func() disabled { return readDisable(getenv, report) })
}

// operatorDisabled is the process's switch, read from the environment
// once.
var operatorDisabled = newDisableSwitch(os.Getenv, os.Stderr)
