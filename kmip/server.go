package kmip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/ttlv"

	"github.com/keymesh/keymesh/policy"
)

// Defaults of Config.
const (
	DefaultMaxMessage   = 64 << 10
	DefaultMaxConns     = 128
	DefaultMaxBatch     = 64
	DefaultIdleTimeout  = 2 * time.Minute
	DefaultReadTimeout  = 30 * time.Second
	handshakeTimeout    = 10 * time.Second
	headerLen           = 8
	tagRequestMessage   = 0x420078
	typeStructure       = 0x01
	maxLoggedReasonRune = 200
)

// Config configures a Server.
type Config struct {
	Backend Backend
	// TLS must require and verify client certificates (see TLSConfig).
	TLS    *tls.Config
	Logger *slog.Logger
	// MaxMessage bounds one request message, in bytes (default 64 KiB);
	// MaxConns the connections served at once (default 128), which bounds
	// the request path's memory (see the package doc); MaxBatch the items
	// of one request (default 64).
	MaxMessage, MaxConns, MaxBatch int
	// IdleTimeout closes a connection with no request for that long
	// (default 2 min); ReadTimeout bounds the arrival of one message once
	// its first byte came (default 30 s).
	IdleTimeout, ReadTimeout time.Duration
}

// Server is a KMIP 1.0–1.4 server over mutual TLS.
type Server struct {
	cfg  Config
	exec *kmipserver.BatchExecutor
	log  *slog.Logger

	panics atomic.Int64 // handler panics recovered (Panics)

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type callerKey struct{}

// WithCaller returns ctx carrying c, for Handle (the connection loop sets
// it from the client certificate; tests and the fuzz target set it here).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerOf(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("kmip: no backend")
	}
	if cfg.TLS == nil || cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("kmip: the TLS configuration must require and verify client certificates")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger, conns: map[net.Conn]struct{}{}}
	s.exec = newExecutor(s)
	return s, nil
}

// Serve accepts connections on ln (plain TCP: Serve does the TLS) until
// Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("kmip: server closed")
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("kmip serving", "addr", ln.Addr().String())
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("kmip: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.cfg.MaxConns {
			n := len(s.conns)
			s.mu.Unlock()
			s.log.Warn("kmip connection refused: too many connections", "remote", nc.RemoteAddr().String(), "open", n)
			nc.Close()
			continue
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				nc.Close()
			}()
			s.serveConn(nc)
		}()
	}
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// serveConn runs the TLS handshake, maps the client certificate to a party
// and serves requests one after the other.
func (s *Server) serveConn(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	tc := tls.Server(nc, s.cfg.TLS)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		s.log.Warn("kmip handshake refused", "remote", remote, "reason", cut(err.Error()))
		return
	}
	state := tc.ConnectionState()
	party, err := PartyOf(state.PeerCertificates)
	if err != nil {
		s.log.Warn("kmip client refused", "remote", remote, "reason", cut(err.Error()))
		return
	}
	caller := Caller{Party: party, Remote: remote}
	s.log.Info("kmip client connected", "remote", remote, "party", party)
	ctx := WithCaller(context.Background(), caller)
	buf := make([]byte, 0, 4096)
	for {
		_ = tc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		var hdr [headerLen]byte
		if _, err := io.ReadFull(tc, hdr[:1]); err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Info("kmip connection closed", "remote", remote, "party", party, "reason", cut(err.Error()))
			}
			return
		}
		_ = tc.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
		if _, err := io.ReadFull(tc, hdr[1:]); err != nil {
			s.log.Warn("kmip connection closed: truncated message header", "remote", remote, "party", party, "reason", cut(err.Error()))
			return
		}
		tag := uint32(hdr[0])<<16 | uint32(hdr[1])<<8 | uint32(hdr[2])
		length := binary.BigEndian.Uint32(hdr[4:])
		if tag != tagRequestMessage || hdr[3] != typeStructure {
			// Without a request structure there is no framing to trust.
			s.log.Warn("kmip connection closed: not a request message", "remote", remote, "party", party, "tag", fmt.Sprintf("0x%06x", tag), "type", hdr[3])
			s.reply(tc, errorResponse(kmip.ResultReasonInvalidMessage, "not a KMIP request message"))
			return
		}
		if length%8 != 0 || int64(length) > int64(s.cfg.MaxMessage-headerLen) {
			s.log.Warn("kmip connection closed: message too large or misaligned", "remote", remote, "party", party, "length", length, "max", s.cfg.MaxMessage)
			s.reply(tc, errorResponse(kmip.ResultReasonInvalidMessage, fmt.Sprintf("message of %d bytes: at most %d, a multiple of 8", length, s.cfg.MaxMessage-headerLen)))
			return
		}
		total := headerLen + int(length)
		if cap(buf) < total {
			buf = make([]byte, 0, total)
		}
		buf = append(buf[:0], hdr[:]...)
		buf = buf[:total]
		if _, err := io.ReadFull(tc, buf[headerLen:]); err != nil {
			s.log.Warn("kmip connection closed: truncated message", "remote", remote, "party", party, "reason", cut(err.Error()))
			return
		}
		resp := s.Handle(ctx, buf)
		_ = tc.SetWriteDeadline(time.Now().Add(s.cfg.ReadTimeout))
		_, err := tc.Write(resp)
		clear(resp) // it may hold key material (Get)
		if err != nil {
			s.log.Warn("kmip connection closed: write failed", "remote", remote, "party", party, "reason", cut(err.Error()))
			return
		}
		if cap(buf) > 64<<10 {
			buf = make([]byte, 0, 4096) // do not keep a large buffer for an idle connection
		}
	}
}

func (s *Server) reply(w io.Writer, resp *kmip.ResponseMessage) {
	_, _ = w.Write(ttlv.MarshalTTLV(resp))
}

// Handle answers one TTLV-encoded request message (the request path the
// connection loop and the fuzz target share). ctx carries the caller. A
// message that does not decode gets an Invalid Message response; a panic
// anywhere below is logged and answered with General Failure.
func (s *Server) Handle(ctx context.Context, raw []byte) (out []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("kmip request panicked", "party", callerOf(ctx).Party, "panic", cut(fmt.Sprint(r)), "stack", string(debug.Stack()))
			out = ttlv.MarshalTTLV(errorResponse(kmip.ResultReasonGeneralFailure, "internal error"))
		}
	}()
	if err := wellFormed(raw); err != nil {
		s.log.Warn("kmip request refused: malformed TTLV", "party", callerOf(ctx).Party, "reason", cut(err.Error()))
		return ttlv.MarshalTTLV(errorResponse(kmip.ResultReasonInvalidMessage, "malformed request: "+cut(err.Error())))
	}
	var req kmip.RequestMessage
	if err := decode(raw, &req); err != nil {
		s.log.Warn("kmip request refused: malformed TTLV", "party", callerOf(ctx).Party, "reason", cut(err.Error()))
		return ttlv.MarshalTTLV(errorResponse(kmip.ResultReasonInvalidMessage, "malformed request: "+cut(err.Error())))
	}
	if len(req.BatchItem) > s.cfg.MaxBatch {
		s.log.Warn("kmip request refused: batch too large", "party", callerOf(ctx).Party, "items", len(req.BatchItem))
		return ttlv.MarshalTTLV(errorResponse(kmip.ResultReasonInvalidMessage, fmt.Sprintf("batch of %d items: at most %d", len(req.BatchItem), s.cfg.MaxBatch)))
	}
	resp := s.exec.HandleRequest(ctx, &req)
	for i := range resp.BatchItem {
		if resp.BatchItem[i].ResultStatus != kmip.ResultStatusSuccess {
			// A failed item carries no payload (the handler's typed nil
			// would be encoded).
			resp.BatchItem[i].ResponsePayload = nil
		}
	}
	out = ttlv.MarshalTTLV(resp)
	scrub(resp) // Get's key material: the encoded copy is out's, cleared after the write
	return out
}

// decode is ttlv.UnmarshalTTLV, with a panic of the decoder (ovh/kmip-go
// v0.7.0 panics on some well-framed but ill-typed structures: a reflect
// call on a zero Value) turned into an error: the input is malformed.
func decode(raw []byte, req *kmip.RequestMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("undecodable structure (%s)", cut(fmt.Sprint(r)))
		}
	}()
	return ttlv.UnmarshalTTLV(raw, req)
}

// Panics returns how many requests panicked below Handle (each was
// answered General Failure and logged).
func (s *Server) Panics() int64 { return s.panics.Load() }

func errorResponse(reason kmip.ResultReason, msg string) *kmip.ResponseMessage {
	return &kmip.ResponseMessage{
		Header: kmip.ResponseHeader{ProtocolVersion: kmip.V1_0, TimeStamp: time.Now().UTC().Truncate(time.Second), BatchCount: 1},
		BatchItem: []kmip.ResponseBatchItem{{
			ResultStatus: kmip.ResultStatusOperationFailed, ResultReason: reason, ResultMessage: msg,
		}},
	}
}

// cut shortens a logged reason.
func cut(s string) string {
	r := []rune(s)
	if len(r) > maxLoggedReasonRune {
		return string(r[:maxLoggedReasonRune]) + "…"
	}
	return s
}

// PartyOf maps a verified client certificate chain to its party:
// "kmip:" + the leaf certificate's subject common name. A certificate
// without a common name, or with one that is not a valid party subject
// (1..256 bytes of printable UTF-8), is refused.
//
// The common name is what KMIP clients' certificates carry (MongoDB,
// PyKMIP, VMware all configure one), and it is unique within the CAs an
// operator configures for KMIP: those CAs are trusted to name clients,
// and only for KMIP.
func PartyOf(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("no client certificate")
	}
	cn := chain[0].Subject.CommonName
	if strings.TrimSpace(cn) == "" {
		return "", errors.New("client certificate has no subject common name")
	}
	p, err := policy.ParseParty(policy.KindKMIP + ":" + cn)
	if err != nil {
		return "", err
	}
	return string(p), nil
}
