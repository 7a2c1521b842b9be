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
	"github.com/quic-go/quic-go/qlog"
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
// and read MB/s. Besides packets/op, each kind reports gso (1 where both
// connections use GSO, ConnectionState().GSO), ecn-capable (1 where the
// sending client's ECN validation, as its qlog events report it, ended
// capable) and, on batchconn, datagrams per send call of the client and
// per read call of the server, and the share of the server's datagrams
// that came coalesced (GRO). The qlog tracer is on the client only: it
// costs quic-go an event per packet sent and received, on every kind.
//
// go test's -count repeats each kind in a row; for the kinds in turn, run
// the test binary once per round instead, as integration/README.md shows.
func BenchmarkQUICBulk(b *testing.B) {
	const perOp = 32 << 20
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{7}).Read(data)
	for _, kind := range benchKinds {
		b.Run(kind.Name, func(b *testing.B) {
			p := newPair(b, kind.Wrap)
			srvTLS, cliTLS := itest.TLS(b, alpn)
			var w ecnWatch
			cliCfg := w.config()
			ln, err := p.srv.Listen(srvTLS, quicConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			srvDone := make(chan error, 1)
			var srvGSO bool
			go func() {
				srvDone <- func() error {
					conn, err := ln.Accept(ctx)
					if err != nil {
						return err
					}
					defer conn.CloseWithError(0, "")
					srvGSO = conn.ConnectionState().GSO
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

			conn, err := p.cli.Dial(ctx, p.srvPC.LocalAddr(), cliTLS, cliCfg)
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
			st, cliGSO := conn.ConnectionStats(), conn.ConnectionState().GSO
			conn.CloseWithError(0, "")
			if err := <-srvDone; err != nil {
				b.Fatal(err)
			}
			ln.Close()
			if err := p.close(); err != nil && !errors.Is(err, net.ErrClosed) {
				b.Error(err)
			}
			ecn, states := w.final(true)
			b.Logf("%s: GSO client %v, server %v; client ECN states %v", kind.Name, cliGSO, srvGSO, states)
			b.ReportMetric(float64(st.PacketsSent)/float64(b.N), "packets/op")
			b.ReportMetric(b2f(cliGSO && srvGSO), "gso")
			b.ReportMetric(b2f(ecn == qlog.ECNStateCapable), "ecn-capable")
			if s, ok := itest.Stats(p.cliPC); ok && s.WriteCalls > 0 {
				b.ReportMetric(float64(s.DatagramsWritten)/float64(s.WriteCalls), "dgrams/sendcall")
			}
			if s, ok := itest.Stats(p.srvPC); ok && s.ReadCalls > 0 {
				b.ReportMetric(float64(s.DatagramsRead)/float64(s.ReadCalls), "dgrams/readcall")
				b.ReportMetric(float64(s.OffloadReceived)/float64(max(s.DatagramsRead, 1)), "gro-frac")
			}
		})
	}
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
