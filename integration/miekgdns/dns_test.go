package miekgdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchconn/batchconn/integration/internal/itest"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const zone = "batchconn.test."

// name is the question of query i.
func name(i int) string { return "q" + strconv.Itoa(i) + "." + zone }

// expected builds the answer section the server gives for query i: a
// TXT record whose strings vary in number and length with i (up to about
// 1 KB) and an A record in 127.0.0.0/8 that encodes i.
func expected(i int) []dns.RR {
	var txt []string
	for s := range i % 5 {
		n := (i*7 + s*53) % 240 // a TXT string holds at most 255 bytes
		txt = append(txt, fmt.Sprintf("%d:%d:%s", i, s, strings.Repeat(string(rune('a'+(i+s)%26)), n)))
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name(i), Rrtype: t, Class: dns.ClassINET, Ttl: uint32(i)}
	}
	return []dns.RR{
		&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: txt},
		&dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, byte(i>>16), byte(i>>8), byte(i)).To4()},
	}
}

// queryIndex parses the i of name(i).
func queryIndex(qname string) (int, bool) {
	s, ok := strings.CutSuffix(qname, "."+zone)
	if !ok || !strings.HasPrefix(s, "q") {
		return 0, false
	}
	i, err := strconv.Atoi(s[1:])
	return i, err == nil
}

func (s *server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
	} else if i, ok := queryIndex(r.Question[0].Name); !ok {
		m.Rcode = dns.RcodeNameError
	} else {
		m.Answer = expected(i)
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if err := w.WriteMsg(m); err != nil {
		s.writeErrs.Add(1)
		s.firstErr.CompareAndSwap(nil, &err)
	}
}

// A server is a dns.Server on a loopback socket held as its kind says.
type server struct {
	pc   net.PacketConn
	srv  *dns.Server
	done chan error // ActivateAndServe's result
	once sync.Once
	err  error

	writeErrs atomic.Int64          // answers WriteMsg failed to send
	firstErr  atomic.Pointer[error] // the first of those failures
}

func startServer(t testing.TB, kind itest.Kind, readTimeout time.Duration) *server {
	t.Helper()
	return startServerOn(t, itest.ListenUDP(t, kind), readTimeout)
}

// startServerOn serves pc, closed when the server stops.
func startServerOn(t testing.TB, pc net.PacketConn, readTimeout time.Duration) *server {
	t.Helper()
	s := &server{pc: pc, done: make(chan error, 1)}
	started := make(chan struct{})
	s.srv = &dns.Server{
		PacketConn:        s.pc,
		Handler:           dns.HandlerFunc(s.serveDNS),
		ReadTimeout:       readTimeout,
		NotifyStartedFunc: func() { close(started) },
	}
	go func() { s.done <- s.srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-s.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start within 10s")
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func (s *server) addr() *net.UDPAddr { return s.pc.LocalAddr().(*net.UDPAddr) }

// stop shuts the server down and returns what ended it: nil when it ran
// until now. A server that ended before (a read error that was not a
// timeout) is an error, and so is an answer that WriteMsg failed to send.
func (s *server) stop() error {
	s.once.Do(func() {
		select {
		case err := <-s.done:
			s.err = fmt.Errorf("server ended before it was shut down: %v", err)
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.ShutdownContext(ctx); err != nil {
			s.err = fmt.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-s.done:
			if err != nil && s.err == nil {
				s.err = fmt.Errorf("server ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			s.err = errors.New("server still serving 10s after shutdown")
		}
		if n := s.writeErrs.Load(); n > 0 && s.err == nil {
			s.err = fmt.Errorf("%d answers failed to send, the first with %v", n, *s.firstErr.Load())
		}
	})
	return s.err
}

// check compares an answer with the one query i must get.
func check(i int, r *dns.Msg) error {
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("query %d: rcode %s", i, dns.RcodeToString[r.Rcode])
	}
	if len(r.Question) != 1 || r.Question[0].Name != name(i) || r.Question[0].Qtype != dns.TypeTXT {
		return fmt.Errorf("query %d: answer to another question: %v", i, r.Question)
	}
	want := expected(i)
	if len(r.Answer) != len(want) {
		return fmt.Errorf("query %d: %d records, want %d: %v", i, len(r.Answer), len(want), r.Answer)
	}
	for k := range want {
		if !dns.IsDuplicate(r.Answer[k], want[k]) || r.Answer[k].Header().Ttl != want[k].Header().Ttl {
			return fmt.Errorf("query %d: record %d is %v, want %v", i, k, r.Answer[k], want[k])
		}
	}
	return nil
}

func query(i int) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name(i), dns.TypeTXT)
	m.SetEdns0(4096, false)
	return m
}

// TestServer answers 2000 queries from 16 goroutines and checks each
// answer, record by record. The first 1000 go out through a socket per
// goroutine held as the server's is (dns.Conn over a connected socket:
// batchconn's Write, Read and RemoteAddr); then every goroutine pauses
// long enough for the server's read deadline to pass a few times (a
// timeout must not end the server); the other 1000 go out through
// dns.Client.Exchange, which dials a plain socket per query.
func TestServer(t *testing.T) {
	const (
		queries     = 2000
		workers     = 16
		readTimeout = 20 * time.Millisecond
	)
	for _, kind := range itest.Kinds {
		t.Run(kind.Name, func(t *testing.T) {
			s := startServer(t, kind, readTimeout)
			client := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			var pause sync.WaitGroup
			pause.Add(workers)
			errc := make(chan error, workers)
			for w := range workers {
				go func() {
					errc <- func() error {
						cc := itest.DialUDP(t, kind, s.addr())
						co := &dns.Conn{Conn: cc}
						defer co.Close()
						i := w
						for ; i < queries/2; i += workers {
							r, _, err := client.ExchangeWithConn(query(i), co)
							if err != nil {
								pause.Done()
								if st, ok := itest.Stats(cc.(net.PacketConn)); ok {
									err = fmt.Errorf("%w (client's batchconn: %+v)", err, st)
								}
								return fmt.Errorf("query %d over %s dns.Conn: %w", i, kind.Name, err)
							}
							if err := check(i, r); err != nil {
								pause.Done()
								return err
							}
						}
						pause.Done()
						pause.Wait()
						time.Sleep(5 * readTimeout)
						for ; i < queries; i += workers {
							r, _, err := client.Exchange(query(i), s.addr().String())
							if err != nil {
								return fmt.Errorf("query %d through dns.Client.Exchange: %w", i, err)
							}
							if err := check(i, r); err != nil {
								return err
							}
						}
						return nil
					}()
				}()
			}
			for range workers {
				if err := <-errc; err != nil {
					t.Error(err)
				}
			}
			if err := s.stop(); err != nil {
				t.Error(err)
			}
			// Read after the stop, which waits for every answer's
			// goroutine: batchconn counts a datagram once its system call
			// has returned, and the client may have the answer before.
			if st, ok := itest.Stats(s.pc); ok {
				t.Logf("server stats: %+v", st)
				if st.DatagramsRead < queries || st.DatagramsWritten < queries {
					t.Errorf("batchconn read %d and wrote %d datagrams for %d queries: traffic bypassed it",
						st.DatagramsRead, st.DatagramsWritten, queries)
				}
			}
		})
	}
}

// A server on a wildcard address, on a host with several addresses (all
// of 127.0.0.0/8 are this host's), must answer each query from the
// address it was sent to, or the client (a connected socket) never sees
// the answer. miekg/dns sees to it itself on a *net.UDPConn (IP_PKTINFO,
// ReadMsgUDP/WriteMsgUDP); on a wrapped conn it uses ReadFrom and WriteTo,
// and batchconn sees to it.
func TestWildcardServerAnswersFromTheQueriedAddress(t *testing.T) {
	for _, kind := range itest.Kinds {
		for _, listen := range []struct{ network, addr string }{{"udp4", "0.0.0.0:0"}, {"udp", "[::]:0"}} {
			t.Run(kind.Name+"/"+listen.addr, func(t *testing.T) {
				la, _ := net.ResolveUDPAddr(listen.network, listen.addr)
				uc, err := net.ListenUDP(listen.network, la)
				if err != nil {
					t.Fatal(err)
				}
				s := startServerOn(t, kind.Wrap(uc), time.Second)
				c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
				for i, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.1"} {
					m := new(dns.Msg)
					m.SetQuestion(name(i), dns.TypeTXT)
					addr := net.JoinHostPort(ip, strconv.Itoa(s.addr().Port))
					r, _, err := c.Exchange(m, addr)
					if err != nil {
						t.Fatalf("query to %s: %v", addr, err)
					}
					if len(r.Answer) != 2 {
						t.Fatalf("query to %s: %d answers, want 2", addr, len(r.Answer))
					}
				}
			})
		}
	}
}
