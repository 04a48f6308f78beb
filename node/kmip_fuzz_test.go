package node

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"

	kmipsrv "github.com/keymesh/keymesh/kmip"
)

// kmipSeeds are real requests: PyKMIP's (testdata/kmip, written by
// capture_pykmip.py) and the ovh/kmip-go client's, KMIP 1.2 and 1.4, a
// batch among them.
func kmipSeeds(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/kmip/*.ttlv")
	if err != nil || len(files) == 0 {
		t.Fatalf("seeds: %v %v", files, err)
	}
	var seeds [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	tpl := aesTemplate("seed", usageAll)
	for _, v := range []kmip.ProtocolVersion{kmip.V1_2, kmip.V1_4} {
		for _, pls := range [][]kmip.OperationPayload{
			{&payloads.DiscoverVersionsRequestPayload{}},
			{&payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations}}},
			{&payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: tpl},
				&payloads.ActivateRequestPayload{}, &payloads.EncryptRequestPayload{Data: []byte("seed")}, &payloads.GetRequestPayload{}},
			{&payloads.LocateRequestPayload{Attribute: []kmip.Attribute{{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "seed"}}}}},
			{&payloads.DecryptRequestPayload{UniqueIdentifier: "kmip/0", Data: make([]byte, 20), IVCounterNonce: make([]byte, 12)}},
			{&payloads.AddAttributeRequestPayload{UniqueIdentifier: "kmip/0", Attribute: kmip.Attribute{AttributeName: "x-a", AttributeValue: "v"}}},
			{&payloads.RevokeRequestPayload{UniqueIdentifier: "kmip/0", RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}}},
		} {
			msg := kmip.NewRequestMessage(v, pls...)
			seeds = append(seeds, ttlv.MarshalTTLV(&msg))
		}
	}
	return seeds
}

// FuzzKMIPRequest feeds the request path (kmip.Server.Handle, the TTLV
// decoder, the batch executor and the node's backend, on a real node)
// arbitrary bytes: every input gets a response that decodes, and no
// handler panics.
func FuzzKMIPRequest(f *testing.F) {
	pki := newKMIPPKI(f)
	n, _, stop := startKMIPNode(f, pki)
	f.Cleanup(stop)
	srv := n.kmip.srv
	for _, s := range kmipSeeds(f) {
		f.Add(s)
	}
	// Inputs the fuzzer found: a structure of length 1 (the decoder
	// indexed out of range) and an unknown operation's ill-typed payload
	// (the decoder's reflect call on a zero Value).
	for _, h := range []string{"42007801000000013030303030303030",
		"42007801000000b84200770100000048420069010000002042006a0200000004000000010000000042006b020000000400000004000000004200920900000008000000006b0eba9e42000d0200000004000000010000000042000f010000006042005c05000000040000002a303030304200790100000030420094070000002130303030303030303030303030303030303030303030303030303030303030303030303030303030423030080000",
	} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	ctx := kmipsrv.WithCaller(context.Background(), kmipsrv.Caller{Party: "kmip:fuzz", Remote: "fuzz"})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > kmipsrv.DefaultMaxMessage {
			return // the connection loop refuses these before Handle
		}
		before := srv.Panics()
		out := srv.Handle(ctx, raw)
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(out, &resp); err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
		if len(resp.BatchItem) == 0 {
			t.Fatal("response without a batch item")
		}
		if srv.Panics() != before {
			t.Fatalf("a handler panicked on %x", raw)
		}
	})
}

// TestKMIPHostileConnection sends what a hostile client would on the
// wire: oversized, misaligned and non-request headers close the
// connection (after an Invalid Message response); a body that does not
// decode is answered on a connection that stays open.
func TestKMIPHostileConnection(t *testing.T) {
	pki := newKMIPPKI(t)
	n, _, stop := startKMIPNode(t, pki)
	defer stop()
	cert, err := tls.LoadX509KeyPair(pki.mongo.CertFile, pki.mongo.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", n.KMIPAddr(), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pki.serverCA.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	}
	readResp := func(c *tls.Conn) (*kmip.ResponseMessage, error) {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, err
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return nil, err
		}
		var r kmip.ResponseMessage
		return &r, ttlv.UnmarshalTTLV(append(hdr[:], body...), &r)
	}
	closed := func(c *tls.Conn) bool {
		var b [1]byte
		_, err := c.Read(b[:])
		return err != nil
	}
	header := func(tag uint32, typ byte, length uint32) []byte {
		h := make([]byte, 8)
		h[0], h[1], h[2], h[3] = byte(tag>>16), byte(tag>>8), byte(tag), typ
		binary.BigEndian.PutUint32(h[4:], length)
		return h
	}
	for _, tc := range []struct {
		name string
		hdr  []byte
	}{
		{"oversized", header(0x420078, 0x01, 1<<30)},
		{"misaligned", header(0x420078, 0x01, 13)},
		{"not a request", header(0x42007B, 0x01, 8)},
		{"not a structure", header(0x420078, 0x07, 8)},
	} {
		c := dial()
		if _, err := c.Write(tc.hdr); err != nil {
			t.Fatal(err)
		}
		r, err := readResp(c)
		if err != nil || r.BatchItem[0].ResultReason != kmip.ResultReasonInvalidMessage {
			t.Errorf("%s: response %+v, %v; want Invalid Message", tc.name, r, err)
		}
		if !closed(c) {
			t.Errorf("%s: connection left open", tc.name)
		}
		c.Close()
	}

	// A well-framed body that is not a request: answered, connection kept.
	c := dial()
	defer c.Close()
	garbage := append(header(0x420078, 0x01, 16), header(0x4200FF, 0x02, 4)...)
	garbage = append(garbage, 0, 0, 0, 1, 0, 0, 0, 0)
	if _, err := c.Write(garbage); err != nil {
		t.Fatal(err)
	}
	if r, err := readResp(c); err != nil || r.BatchItem[0].ResultReason != kmip.ResultReasonInvalidMessage {
		t.Fatalf("garbage body: %+v, %v", r, err)
	}
	// Deep nesting within the size bound: answered too.
	const depth = 2000
	var deep []byte
	for i := range depth {
		deep = append(deep, header(0x420078, 0x01, uint32(8*(depth-1-i)))...)
	}
	if _, err := c.Write(deep); err != nil {
		t.Fatal(err)
	}
	if r, err := readResp(c); err != nil || r.BatchItem[0].ResultStatus != kmip.ResultStatusOperationFailed {
		t.Fatalf("deep nesting: %+v, %v", r, err)
	}
	// The connection still serves a real request.
	msg := kmip.NewRequestMessage(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{})
	if _, err := c.Write(ttlv.MarshalTTLV(&msg)); err != nil {
		t.Fatal(err)
	}
	if r, err := readResp(c); err != nil || r.BatchItem[0].ResultStatus != kmip.ResultStatusSuccess {
		t.Fatalf("discover versions after hostile input: %+v, %v", r, err)
	}
	if p := n.kmip.srv.Panics(); p != 0 {
		t.Errorf("%d panics", p)
	}
}

// TestKMIPFuzzSeeds runs the fuzz seeds as a test (without -fuzz they
// run as part of FuzzKMIPRequest too; this checks they are real requests
// the server executes).
func TestKMIPFuzzSeeds(t *testing.T) {
	pki := newKMIPPKI(t)
	n, _, stop := startKMIPNode(t, pki)
	defer stop()
	ctx := kmipsrv.WithCaller(context.Background(), kmipsrv.Caller{Party: "kmip:seed"})
	ok := 0
	for _, s := range kmipSeeds(t) {
		var resp kmip.ResponseMessage
		if err := ttlv.UnmarshalTTLV(n.kmip.srv.Handle(ctx, s), &resp); err != nil {
			t.Fatal(err)
		}
		for _, bi := range resp.BatchItem {
			if bi.ResultReason == kmip.ResultReasonInvalidMessage {
				t.Errorf("seed answered Invalid Message: %s", bi.ResultMessage)
			}
			if bi.ResultStatus == kmip.ResultStatusSuccess {
				ok++
			}
		}
	}
	if ok < 10 {
		t.Errorf("only %d seed items succeeded", ok)
	}
}
