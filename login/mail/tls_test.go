package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/comstockloan/idp/login/mail"
)

// relay is a go-smtp server that demands AUTH PLAIN, like a real relay.
type relay struct {
	mu       sync.Mutex
	authUser string
	got      []string // "from>to" of accepted mail
}

type relaySession struct {
	r        *relay
	authed   bool
	from, to string
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *relaySession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "mailer" || pass != "relay-secret" {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		s.r.mu.Lock()
		s.r.authUser = user
		s.r.mu.Unlock()
		return nil
	}), nil
}
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }
func (s *relaySession) Data(r io.Reader) error {
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.got = append(s.r.got, s.from+">"+s.to)
	s.r.mu.Unlock()
	return nil
}
func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		DNSNames: []string{"relay.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func startRelay(t *testing.T, implicit bool) (*relay, string, int, *x509.CertPool) {
	t.Helper()
	cert, pool := selfSigned(t)
	r := &relay{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{r: r}, nil }))
	srv.Domain = "relay.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return r, host, p, pool
}

func TestSendOverTLSWithPlainAuth(t *testing.T) {
	for _, mode := range []string{mail.TLSStartTLS, mail.TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			r, host, port, pool := startRelay(t, mode == mail.TLSImplicit)
			s := &mail.SMTPSender{
				Host: host, Port: port, TLS: mode, Username: "mailer", Password: "relay-secret",
				From: "info@jsfnet.com", Timeout: 5 * time.Second,
				TLSConfig: &tls.Config{ServerName: "relay.test", RootCAs: pool},
			}
			if err := s.Send(context.Background(), mail.Message{To: "a@example.jp", Subject: "件名", Body: "本文"}); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.authUser != "mailer" || len(r.got) != 1 || r.got[0] != "info@jsfnet.com>a@example.jp" {
				t.Fatalf("relay saw user %q mail %v", r.authUser, r.got)
			}
		})
	}
}

func TestSendRefusesUntrustedCertificateAndBadPassword(t *testing.T) {
	_, host, port, pool := startRelay(t, false)
	untrusted := &mail.SMTPSender{Host: host, Port: port, TLS: mail.TLSStartTLS, From: "info@jsfnet.com", Timeout: 5 * time.Second,
		TLSConfig: &tls.Config{ServerName: "relay.test"}}
	err := untrusted.Send(context.Background(), mail.Message{To: "a@example.jp", Subject: "s", Body: "b"})
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("untrusted relay: err = %v", err)
	}
	badPass := &mail.SMTPSender{Host: host, Port: port, TLS: mail.TLSStartTLS, Username: "mailer", Password: "wrong",
		From: "info@jsfnet.com", Timeout: 5 * time.Second, TLSConfig: &tls.Config{ServerName: "relay.test", RootCAs: pool}}
	if err := badPass.Send(context.Background(), mail.Message{To: "a@example.jp", Subject: "s", Body: "b"}); err == nil {
		t.Fatal("wrong relay password accepted")
	}
}
