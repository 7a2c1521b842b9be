package quicgo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
	"github.com/batchconn/batchconn/integration/internal/itest"
)

// hiding is a net.PacketConn that offers net.PacketConn's methods and
// nothing else, as a wrapper of a program's own would: quic-go then
// moves one packet per ReadFrom or WriteTo, and cannot raise the socket
// buffers.
type hiding struct{ net.PacketConn }

// The three ways BenchmarkQUICBulk holds each socket. All three sockets
// get the same 4 MiB receive buffer from itest.ListenUDP first; quic-go
// then raises the raw socket's and batchconn's further where it can.
var benchKinds = []itest.Kind{
	{Name: "raw", Wrap: func(uc *net.UDPConn) net.PacketConn { return uc }},
	{Name: "hidden", Wrap: func(uc *net.UDPConn) net.PacketConn { return hiding{uc} }},
	{Name: "batchconn", Wrap: func(uc *net.UDPConn) net.PacketConn { return batchconn.New(uc, nil) }},
}

// BenchmarkQUICBulk measures one-way bulk throughput over quic-go: each
// operation sends 32 MiB on a fresh stream of one connection, client to
// server, and waits for the server to have read it all. Run it as
//
//	go test -run XXX -bench QUICBulk -benchtime 3x
//
// and read MB/s.
func BenchmarkQUICBulk(b *testing.B) {
	const perOp = 32 << 20
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	for _, kind := range benchKinds {
		b.Run(kind.Name, func(b *testing.B) {
			p := newPair(b, kind.Wrap)
			srvTLS, cliTLS := itest.TLS(b, alpn)
			ln, err := p.srv.Listen(srvTLS, quicConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			srvDone := make(chan error, 1)
			go func() {
				srvDone <- func() error {
					conn, err := ln.Accept(ctx)
					if err != nil {
						return err
					}
					defer conn.CloseWithError(0, "")
					for {
						str, err := conn.AcceptStream(ctx)
						if err != nil {
							return nil // the client closed
						}
						n, err := io.Copy(io.Discard, str)
						if err != nil || n != perOp {
							return fmt.Errorf("server read %d bytes of %d: %v", n, perOp, err)
						}
						str.Write([]byte{1})
						str.Close()
					}
				}()
			}()

			conn, err := p.cli.Dial(ctx, p.srvPC.LocalAddr(), cliTLS, quicConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(perOp)
			b.ResetTimer()
			for range b.N {
				str, err := conn.OpenStreamSync(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < perOp; sent += len(data) {
					if _, err := str.Write(data); err != nil {
						b.Fatal(err)
					}
				}
				str.Close()
				ack, err := io.ReadAll(str)
				if err != nil || len(ack) != 1 {
					b.Fatalf("ack %v: %v", ack, err)
				}
			}
			b.StopTimer()
			st := conn.ConnectionStats()
			conn.CloseWithError(0, "")
			if err := <-srvDone; err != nil {
				b.Fatal(err)
			}
			ln.Close()
			if err := p.close(); err != nil && !errors.Is(err, net.ErrClosed) {
				b.Error(err)
			}
			b.ReportMetric(float64(st.PacketsSent)/float64(b.N), "packets/op")
			if s, ok := itest.Stats(p.cliPC); ok && s.WriteCalls > 0 {
				b.ReportMetric(float64(s.DatagramsWritten)/float64(s.WriteCalls), "dgrams/sendcall")
			}
		})
	}
}
