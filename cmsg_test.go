package batchconn

import "testing"

func TestSegSizeControlMessageRoundTrip(t *testing.T) {
	for _, word := range []int{4, 8} {
		oob := make([]byte, 64)
		n := putSegSize(oob, word, 17, 103, 1200)
		if got := cmsgUint(oob[:n], word, 17, 103); got != 1200 {
			t.Errorf("word %d: read back %d, want 1200", word, got)
		}
		if got := cmsgUint(oob[:n], word, 17, 104); got != 0 {
			t.Errorf("word %d: another type read as %d", word, got)
		}
		// A second message after one of another type.
		m := putSegSize(oob, word, 1, 1, 7)
		putSegSize(oob[m:], word, 17, 103, 1400)
		if got := cmsgUint(oob[:m+n], word, 17, 103); got != 1400 {
			t.Errorf("word %d: second message read as %d, want 1400", word, got)
		}
	}
}

func FuzzGROSegSize(f *testing.F) {
	oob := make([]byte, 24)
	putSegSize(oob, 8, 17, 104, 1200)
	f.Add(oob, true)
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255}, true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, oob []byte, wide bool) {
		word := 4
		if wide {
			word = 8
		}
		if seg := cmsgUint(oob, word, 17, 104); seg < 0 {
			t.Fatalf("negative segment size %d", seg)
		}
	})
}
