// Package itest holds what the integration tests share: the two ways of
// holding a UDP socket (plain and batchconn), loopback sockets that close
// themselves, a self-signed TLS certificate, and reproducible payloads.
package itest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
)

// A Kind is a way to hold a UDP socket. Every test runs on each kind and
// must see the same traffic.
type Kind struct {
	Name string
	Wrap func(*net.UDPConn) net.PacketConn
}

// Plain is the socket itself; Batchconn wraps it with batchconn.New and
// the default configuration.
var (
	Plain     = Kind{"plain", func(uc *net.UDPConn) net.PacketConn { return uc }}
	Batchconn = Kind{"batchconn", func(uc *net.UDPConn) net.PacketConn { return batchconn.New(uc, nil) }}
	Kinds     = []Kind{Plain, Batchconn}
)

// Loopback is 127.0.0.1: the only address these tests use.
var Loopback = net.IPv4(127, 0, 0, 1)

// ReadBuffer is the socket receive buffer the tests ask for, so that a
// burst that a test allows never overflows it; the kernel caps it at
// net.core.rmem_max.
const ReadBuffer = 4 << 20

// ListenUDP opens a UDP socket on 127.0.0.1 with a free port, holds it as
// kind says, and closes it when the test ends.
func ListenUDP(tb testing.TB, kind Kind) net.PacketConn {
	tb.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: Loopback})
	if err != nil {
		tb.Fatal(err)
	}
	if err := uc.SetReadBuffer(ReadBuffer); err != nil {
		tb.Fatal(err)
	}
	pc := kind.Wrap(uc)
	tb.Cleanup(func() { pc.Close() }) // a second Close only errs
	return pc
}

// DialUDP opens a UDP socket on 127.0.0.1 connected to raddr, held as
// kind says: a net.Conn (batchconn's *PacketConn is one, as *net.UDPConn
// is). It is closed when the test ends.
func DialUDP(tb testing.TB, kind Kind, raddr net.Addr) net.Conn {
	tb.Helper()
	uc, err := net.DialUDP("udp4", &net.UDPAddr{IP: Loopback}, raddr.(*net.UDPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	pc := kind.Wrap(uc)
	tb.Cleanup(func() { pc.Close() })
	return pc.(net.Conn)
}

// Stats returns batchconn's counters for pc, a *batchconn.PacketConn or
// a test's shim around one that has its Stats, and false for any other
// conn.
func Stats(pc net.PacketConn) (batchconn.Stats, bool) {
	if bc, ok := pc.(interface{ Stats() batchconn.Stats }); ok {
		return bc.Stats(), true
	}
	return batchconn.Stats{}, false
}

// TLS returns a server and a client configuration around a fresh
// self-signed ECDSA certificate for "localhost" and 127.0.0.1, made once
// per process.
func TLS(tb testing.TB, alpn ...string) (server, client *tls.Config) {
	tb.Helper()
	certOnce.Do(makeCert)
	if certErr != nil {
		tb.Fatal(certErr)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: alpn}
	client = &tls.Config{RootCAs: certPool, ServerName: "localhost", NextProtos: alpn}
	return server, client
}

var (
	certOnce sync.Once
	cert     tls.Certificate
	certPool *x509.CertPool
	certErr  error
)

func makeCert() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		certErr = err
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "batchconn integration"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{Loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		certErr = err
		return
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		certErr = err
		return
	}
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	certPool = x509.NewCertPool()
	certPool.AddCert(leaf)
}

// Stream returns the reproducible byte stream named by seed, as a
// reader without end.
func Stream(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return mrand.NewChaCha8(s)
}

// WriteStream writes n bytes of stream seed to w, in chunks of chunk
// bytes.
func WriteStream(w io.Writer, seed uint64, n int64, chunk int) error {
	src := Stream(seed)
	buf := make([]byte, chunk)
	for n > 0 {
		b := buf[:min(int64(len(buf)), n)]
		src.Read(b)
		k, err := w.Write(b)
		n -= int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckStream reads r to its end and reports whether it held exactly n
// bytes of stream seed; the error says where it first differs.
func CheckStream(r io.Reader, seed uint64, n int64) error {
	src := Stream(seed)
	got := make([]byte, 64<<10)
	want := make([]byte, len(got))
	var off int64
	for {
		k, err := r.Read(got)
		if k > 0 {
			if off+int64(k) > n {
				return fmt.Errorf("stream %d: more than the %d bytes sent (%d at least)", seed, n, off+int64(k))
			}
			src.Read(want[:k])
			if !bytes.Equal(got[:k], want[:k]) {
				i := 0
				for got[i] == want[i] {
					i++
				}
				return fmt.Errorf("stream %d: byte %d differs: got %#x, want %#x", seed, off+int64(i), got[i], want[i])
			}
			off += int64(k)
		}
		if err == io.EOF {
			if off != n {
				return fmt.Errorf("stream %d: ended after %d bytes of %d", seed, off, n)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("stream %d: after %d bytes of %d: %w", seed, off, n, err)
		}
	}
}

// Payload returns the content of datagram seq of the flow named by flow:
// size bytes, the first 12 of them the flow and seq, the rest from the
// flow's stream.
func Payload(flow uint32, seq uint32, size int) []byte {
	p := make([]byte, max(size, 12))
	put32(p[0:], flow)
	put32(p[4:], seq)
	put32(p[8:], uint32(size))
	Stream(uint64(flow)<<32 | uint64(seq)).Read(p[12:])
	return p[:max(size, 12)]
}

func put32(p []byte, v uint32) {
	p[0], p[1], p[2], p[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// ParsePayload checks p against Payload and returns its seq.
func ParsePayload(p []byte, flow uint32) (uint32, error) {
	if len(p) < 12 {
		return 0, fmt.Errorf("datagram of %d bytes: too short", len(p))
	}
	get := func(b []byte) uint32 { return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) }
	if f := get(p); f != flow {
		return 0, fmt.Errorf("datagram of flow %d, want flow %d", f, flow)
	}
	seq, size := get(p[4:]), int(get(p[8:]))
	if want := Payload(flow, seq, size); !bytes.Equal(p, want) {
		return seq, fmt.Errorf("flow %d datagram %d: %d bytes differ from the %d sent", flow, seq, len(p), len(want))
	}
	return seq, nil
}
