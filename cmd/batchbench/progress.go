package main

import (
	"fmt"
	"io"
	"os"
)

// progress tells on stderr which run is under way: on a terminal, one
// line rewritten in place; with -v, a line per run; otherwise nothing, so
// that a log holds only what matters.
type progress struct {
	w            io.Writer
	tty, verbose bool
	n, total     int
}

func newProgress(f *os.File, verbose bool) *progress {
	fi, err := f.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0 && !verbose
	return &progress{w: f, tty: tty, verbose: verbose}
}

func (p *progress) start(label string) {
	p.n++
	line := fmt.Sprintf("batchbench: [%d/%d] %s", p.n, p.total, label)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else if p.verbose {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) clear() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
