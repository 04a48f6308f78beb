package node

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"

	"github.com/keymesh/keymesh/kmip/kmiptest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// kmipPKI is a server CA and certificate, a client CA with two clients
// ("mongo" and "other"), and an untrusted CA with one client.
type kmipPKI struct {
	serverCA            *kmiptest.CA
	server              kmiptest.Pair
	clientCA            *kmiptest.CA
	mongo, other, rogue kmiptest.Pair
	untrustedCA         *kmiptest.CA
	dir                 string
}

func newKMIPPKI(t testing.TB) *kmipPKI {
	t.Helper()
	dir := t.TempDir()
	p := &kmipPKI{dir: dir}
	var err error
	must := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	p.serverCA, err = kmiptest.NewCA(dir, "server")
	must(err)
	p.server, err = p.serverCA.Server(dir, "kmip-server")
	must(err)
	p.clientCA, err = kmiptest.NewCA(dir, "clients")
	must(err)
	p.mongo, err = p.clientCA.Client(dir, "mongo", "mongo")
	must(err)
	p.other, err = p.clientCA.Client(dir, "other", "other")
	must(err)
	p.untrustedCA, err = kmiptest.NewCA(dir, "untrusted")
	must(err)
	p.rogue, err = p.untrustedCA.Client(dir, "rogue", "mongo") // same name, wrong CA
	must(err)
	return p
}

func (p *kmipPKI) config() KMIPConfig {
	return KMIPConfig{Listen: "127.0.0.1:0", Cert: p.server.CertFile, Key: p.server.KeyFile, ClientCAs: []string{p.clientCA.File}}
}

// startKMIPNode starts a standalone node with KMIP and returns it, its
// admin token and a stop function.
func startKMIPNode(t testing.TB, pki *kmipPKI, mods ...func(*KMIPConfig)) (*Node, string, func()) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", RotationGrace: time.Millisecond, KMIP: pki.config()}
	for _, m := range mods {
		m(&cfg.KMIP)
	}
	if _, err := Init(cfg, AdminTokenFile(dir)); err != nil {
		t.Fatal(err)
	}
	admin, err := os.ReadFile(AdminTokenFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	var logger *slog.Logger
	if os.Getenv("KEYMESH_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	n, err := Open(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve() = %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("node did not stop within 15s")
		}
	}
	return n, strings.TrimSpace(string(admin)), stop
}

func dialKMIP(t testing.TB, addr string, pki *kmipPKI, client kmiptest.Pair, opts ...kmipclient.Option) (*kmipclient.Client, error) {
	t.Helper()
	opts = append([]kmipclient.Option{kmipclient.WithRootCAFile(pki.serverCA.File), kmipclient.WithClientCertFiles(client.CertFile, client.KeyFile)}, opts...)
	return kmipclient.Dial(addr, opts...)
}

// refusedAtHandshake checks that the server refuses client's certificate
// during the TLS handshake: with TLS 1.3 the refusal arrives as an alert on
// the first read, and no KMIP message is answered.
func refusedAtHandshake(t *testing.T, addr string, pki *kmipPKI, client kmiptest.Pair) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(pki.serverCA.File)
	if err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("server CA: %v", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12,
			// Sent whatever CAs the server names, so the server itself
			// must judge (and refuse) it.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err != nil {
		// Refused within the handshake, by the server: not a failure of
		// this side to verify the server.
		var uerr x509.UnknownAuthorityError
		var herr x509.HostnameError
		if errors.As(err, &uerr) || errors.As(err, &herr) {
			t.Fatalf("the test client does not trust the server: %v", err)
		}
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte{0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0}); err != nil {
		return
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	switch {
	case err == nil || n > 0:
		t.Fatal("a client certificate of an untrusted CA was served")
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatal("no refusal within 5 s: the server neither answered nor refused the untrusted certificate")
	}
	t.Logf("untrusted client certificate refused: %v", err)
}

// call sends one payload and returns the response payload and the result
// reason (0 on success).
func call(t *testing.T, c *kmipclient.Client, pl kmip.OperationPayload) (kmip.OperationPayload, kmip.ResultReason) {
	t.Helper()
	res, err := c.Batch(context.Background(), pl)
	if err != nil {
		t.Fatalf("%T: %v", pl, err)
	}
	if res[0].ResultStatus != kmip.ResultStatusSuccess {
		t.Logf("%T: %s: %s", pl, ttlv.EnumStr(res[0].ResultReason), res[0].ResultMessage)
		return nil, res[0].ResultReason
	}
	return res[0].ResponsePayload, 0
}

func mustCall[R kmip.OperationPayload](t *testing.T, c *kmipclient.Client, pl kmip.OperationPayload) R {
	t.Helper()
	resp, reason := call(t, c, pl)
	if reason != 0 {
		t.Fatalf("%T: result %s", pl, ttlv.EnumStr(reason))
	}
	return resp.(R)
}

func wantReason(t *testing.T, what string, c *kmipclient.Client, pl kmip.OperationPayload, want kmip.ResultReason) {
	t.Helper()
	if _, got := call(t, c, pl); got != want {
		t.Errorf("%s: result %s, want %s", what, ttlv.EnumStr(got), ttlv.EnumStr(want))
	}
}

func aesTemplate(name string, mask kmip.CryptographicUsageMask) kmip.TemplateAttribute {
	attrs := []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: mask},
	}
	if name != "" {
		attrs = append(attrs, kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: name, NameType: kmip.NameTypeUninterpretedTextString}})
	}
	return kmip.TemplateAttribute{Attribute: attrs}
}

func stateOf(t *testing.T, c *kmipclient.Client, id string) kmip.State {
	t.Helper()
	r := mustCall[*payloads.GetAttributesResponsePayload](t, c, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmip.AttributeName{kmip.AttributeNameState}})
	if len(r.Attribute) != 1 {
		t.Fatalf("Get Attributes(State) = %v", r.Attribute)
	}
	return r.Attribute[0].AttributeValue.(kmip.State)
}

const usageAll = kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt | kmip.CryptographicUsageExport

// TestKMIP drives a standalone node's KMIP server with the ovh/kmip-go
// client: the lifecycle, the grants, the refusals and batches.
func TestKMIP(t *testing.T) {
	pki := newKMIPPKI(t)
	n, admin, stop := startKMIPNode(t, pki)
	defer stop()
	addr := n.KMIPAddr()
	mongo, err := dialKMIP(t, addr, pki, pki.mongo)
	if err != nil {
		t.Fatal(err)
	}
	defer mongo.Close()
	if v := mongo.Version(); v != kmip.V1_4 {
		t.Errorf("negotiated %v, want 1.4", v)
	}
	q := mustCall[*payloads.QueryResponsePayload](t, mongo, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations, kmip.QueryFunctionObjects}})
	for _, op := range []kmip.Operation{kmip.OperationCreate, kmip.OperationEncrypt, kmip.OperationLocate} {
		if !slices.Contains(q.Operations, op) {
			t.Errorf("Query operations %v lack %s", q.Operations, ttlv.EnumStr(op))
		}
	}

	// Create, pre-active until activated.
	cr := mustCall[*payloads.CreateResponsePayload](t, mongo, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("db-master", usageAll)})
	id := cr.UniqueIdentifier
	if !strings.HasPrefix(id, DefaultKMIPNamespace+"/") {
		t.Fatalf("unique identifier %q is not a key of the kmip namespace", id)
	}
	if st := stateOf(t, mongo, id); st != kmip.StatePreActive {
		t.Errorf("state after Create = %s", ttlv.EnumStr(st))
	}
	wantReason(t, "encrypt pre-active", mongo, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("x")}, kmip.ResultReasonIllegalOperation)
	mustCall[*payloads.ActivateResponsePayload](t, mongo, &payloads.ActivateRequestPayload{UniqueIdentifier: id})
	if st := stateOf(t, mongo, id); st != kmip.StateActive {
		t.Errorf("state after Activate = %s", ttlv.EnumStr(st))
	}
	// The key is a keymesh key, shown by the REST API.
	rest, err := client.New(n.URL(), admin)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := rest.GetKey(context.Background(), id); err != nil || k.State != "active" {
		t.Fatalf("REST GetKey(%s) = %+v, %v", id, k, err)
	}

	// Locate by name, by state, by object type.
	loc := mustCall[*payloads.LocateResponsePayload](t, mongo, &payloads.LocateRequestPayload{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "db-master", NameType: kmip.NameTypeUninterpretedTextString}}}})
	if !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Errorf("Locate(name) = %v, want [%s]", loc.UniqueIdentifier, id)
	}
	loc = mustCall[*payloads.LocateResponsePayload](t, mongo, &payloads.LocateRequestPayload{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameState, AttributeValue: kmip.StateActive},
		{AttributeName: kmip.AttributeNameObjectType, AttributeValue: kmip.ObjectTypeSymmetricKey}}})
	if !slices.Contains(loc.UniqueIdentifier, id) {
		t.Errorf("Locate(active symmetric) = %v, lacks %s", loc.UniqueIdentifier, id)
	}
	loc = mustCall[*payloads.LocateResponsePayload](t, mongo, &payloads.LocateRequestPayload{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "nope"}}}})
	if len(loc.UniqueIdentifier) != 0 {
		t.Errorf("Locate(unknown name) = %v", loc.UniqueIdentifier)
	}

	// Encrypt and decrypt (KMIP 1.4: tag in its own field), with AAD.
	aad := []byte("collection=users")
	enc := mustCall[*payloads.EncryptResponsePayload](t, mongo, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("secret value"),
		CryptographicParameters:               &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeGCM, CryptographicAlgorithm: kmip.CryptographicAlgorithmAES},
		AuthenticatedEncryptionAdditionalData: aad})
	if len(enc.IVCounterNonce) != 12 || len(enc.AuthenticatedEncryptionTag) != 16 || len(enc.Data) != len("secret value") {
		t.Fatalf("Encrypt = iv %d, tag %d, data %d bytes", len(enc.IVCounterNonce), len(enc.AuthenticatedEncryptionTag), len(enc.Data))
	}
	dec := mustCall[*payloads.DecryptResponsePayload](t, mongo, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc.Data,
		IVCounterNonce: enc.IVCounterNonce, AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag, AuthenticatedEncryptionAdditionalData: aad})
	if string(dec.Data) != "secret value" {
		t.Fatalf("Decrypt = %q", dec.Data)
	}
	bad := slices.Clone(enc.Data)
	bad[0] ^= 1
	wantReason(t, "decrypt tampered", mongo, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: bad, IVCounterNonce: enc.IVCounterNonce,
		AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag, AuthenticatedEncryptionAdditionalData: aad}, kmip.ResultReasonCryptographicFailure)
	wantReason(t, "decrypt wrong aad", mongo, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc.Data, IVCounterNonce: enc.IVCounterNonce,
		AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag, AuthenticatedEncryptionAdditionalData: []byte("other")}, kmip.ResultReasonCryptographicFailure)
	wantReason(t, "encrypt with a client IV", mongo, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("x"), IVCounterNonce: make([]byte, 12)}, kmip.ResultReasonInvalidField)
	wantReason(t, "encrypt CBC", mongo, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("x"),
		CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC}}, kmip.ResultReasonFeatureNotSupported)

	// Get: exportable, but no export grant yet.
	wantReason(t, "get without an export grant", mongo, &payloads.GetRequestPayload{UniqueIdentifier: id}, kmip.ResultReasonPermissionDenied)
	if _, err := rest.CreateGrant(context.Background(), apiv1.CreateGrantRequest{Key: id, Party: "kmip:mongo", Ops: []string{"export"}}); err != nil {
		t.Fatal(err)
	}
	got := mustCall[*payloads.GetResponsePayload](t, mongo, &payloads.GetRequestPayload{UniqueIdentifier: id})
	material, err := got.Object.(*kmip.SymmetricKey).KeyMaterial()
	if err != nil || len(material) != 32 {
		t.Fatalf("Get material: %d bytes, %v", len(material), err)
	}
	// The exported key is the key Encrypt used.
	block, _ := aes.NewCipher(material)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, enc.IVCounterNonce, append(slices.Clone(enc.Data), enc.AuthenticatedEncryptionTag...), aad)
	if err != nil || string(pt) != "secret value" {
		t.Fatalf("local AES-GCM open with the exported key = %q, %v", pt, err)
	}

	// Transparent Symmetric Key format: the same material.
	tsk := mustCall[*payloads.GetResponsePayload](t, mongo, &payloads.GetRequestPayload{UniqueIdentifier: id, KeyFormatType: kmip.KeyFormatTypeTransparentSymmetricKey})
	if m2, err := tsk.Object.(*kmip.SymmetricKey).KeyMaterial(); err != nil || !slices.Equal(m2, material) {
		t.Errorf("Get (transparent) = %d bytes, %v", len(m2), err)
	}
	wantReason(t, "get PKCS#8", mongo, &payloads.GetRequestPayload{UniqueIdentifier: id, KeyFormatType: kmip.KeyFormatTypePKCS_8}, kmip.ResultReasonKeyFormatTypeNotSupported)
	// Check: the usage mask allows Encrypt, not Sign.
	check := func(mask kmip.CryptographicUsageMask) kmip.ResultReason {
		_, r := call(t, mongo, kmip.NewUnknownPayload(kmip.OperationCheck,
			ttlv.Value{Tag: kmip.TagUniqueIdentifier, Value: id}, ttlv.Value{Tag: kmip.TagCryptographicUsageMask, Value: int32(mask)}))
		return r
	}
	if r := check(kmip.CryptographicUsageEncrypt); r != 0 {
		t.Errorf("Check(Encrypt) = %s", ttlv.EnumStr(r))
	}
	if r := check(kmip.CryptographicUsageSign); r != kmip.ResultReasonIllegalOperation {
		t.Errorf("Check(Sign) = %s, want Illegal Operation", ttlv.EnumStr(r))
	}

	// A non-exportable key is never exported, even with a grant.
	cr2 := mustCall[*payloads.CreateResponsePayload](t, mongo, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: aesTemplate("", kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt)})
	if _, err := rest.CreateGrant(context.Background(), apiv1.CreateGrantRequest{Key: cr2.UniqueIdentifier, Party: "kmip:mongo", Ops: []string{"export"}}); err != nil {
		t.Fatal(err)
	}
	wantReason(t, "get of a non-exportable key", mongo, &payloads.GetRequestPayload{UniqueIdentifier: cr2.UniqueIdentifier}, kmip.ResultReasonPermissionDenied)

	// Another client sees nothing of mongo's keys and cannot use them.
	other, err := dialKMIP(t, addr, pki, pki.other)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wantReason(t, "other: encrypt", other, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("x")}, kmip.ResultReasonPermissionDenied)
	wantReason(t, "other: get attributes", other, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id}, kmip.ResultReasonItemNotFound)
	wantReason(t, "other: revoke", other, &payloads.RevokeRequestPayload{UniqueIdentifier: id, RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}}, kmip.ResultReasonItemNotFound)
	if l := mustCall[*payloads.LocateResponsePayload](t, other, &payloads.LocateRequestPayload{}); len(l.UniqueIdentifier) != 0 {
		t.Errorf("other: Locate() = %v", l.UniqueIdentifier)
	}
	// Granted decrypt, it decrypts but may not change the key.
	if _, err := rest.CreateGrant(context.Background(), apiv1.CreateGrantRequest{Key: id, Party: "kmip:other", Ops: []string{"decrypt"}}); err != nil {
		t.Fatal(err)
	}
	if d := mustCall[*payloads.DecryptResponsePayload](t, other, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc.Data, IVCounterNonce: enc.IVCounterNonce,
		AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag, AuthenticatedEncryptionAdditionalData: aad}); string(d.Data) != "secret value" {
		t.Errorf("other: Decrypt = %q", d.Data)
	}
	wantReason(t, "other: encrypt with decrypt only", other, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("x")}, kmip.ResultReasonPermissionDenied)
	wantReason(t, "other: revoke, granted", other, &payloads.RevokeRequestPayload{UniqueIdentifier: id, RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}}, kmip.ResultReasonPermissionDenied)

	// Attributes: add, modify, delete; server attributes are read-only.
	mustCall[*payloads.AddAttributeResponsePayload](t, mongo, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id,
		Attribute: kmip.Attribute{AttributeName: "x-app", AttributeValue: "users-db"}})
	mustCall[*payloads.AddAttributeResponsePayload](t, mongo, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id,
		Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "db-master-alias", NameType: kmip.NameTypeUninterpretedTextString}}})
	mustCall[*payloads.ModifyAttributeResponsePayload](t, mongo, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id,
		Attribute: kmip.Attribute{AttributeName: "x-app", AttributeValue: "orders-db"}})
	ga := mustCall[*payloads.GetAttributesResponsePayload](t, mongo, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmip.AttributeName{"x-app", kmip.AttributeNameName}})
	var names []string
	var app string
	for _, a := range ga.Attribute {
		switch v := a.AttributeValue.(type) {
		case kmip.Name:
			names = append(names, v.NameValue)
		case ttlv.Value:
			app, _ = v.Value.(string)
		}
	}
	if !slices.Equal(names, []string{"db-master", "db-master-alias"}) || app != "orders-db" {
		t.Errorf("attributes: names %v, x-app %q (%+v)", names, app, ga.Attribute)
	}
	loc = mustCall[*payloads.LocateResponsePayload](t, mongo, &payloads.LocateRequestPayload{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "db-master-alias"}}}})
	if !slices.Equal(loc.UniqueIdentifier, []string{id}) {
		t.Errorf("Locate(alias) = %v", loc.UniqueIdentifier)
	}
	one := int32(1)
	mustCall[*payloads.DeleteAttributeResponsePayload](t, mongo, &payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id, AttributeName: kmip.AttributeNameName, AttributeIndex: &one})
	wantReason(t, "modify State", mongo, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id,
		Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameState, AttributeValue: kmip.StateActive}}, kmip.ResultReasonPermissionDenied)
	al := mustCall[*payloads.GetAttributeListResponsePayload](t, mongo, &payloads.GetAttributeListRequestPayload{UniqueIdentifier: id})
	for _, want := range []kmip.AttributeName{kmip.AttributeNameUniqueIdentifier, kmip.AttributeNameState, kmip.AttributeNameName, "x-app", kmip.AttributeNameCryptographicUsageMask} {
		if !slices.Contains(al.AttributeName, want) {
			t.Errorf("Get Attribute List = %v, lacks %q", al.AttributeName, want)
		}
	}

	// A batch: Create, Activate and Encrypt through the ID placeholder.
	res, err := mongo.Batch(context.Background(),
		&payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("batch", usageAll)},
		&payloads.ActivateRequestPayload{},
		&payloads.EncryptRequestPayload{Data: []byte("batched")},
		&payloads.CreateKeyPairRequestPayload{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []kmip.ResultStatus{kmip.ResultStatusSuccess, kmip.ResultStatusSuccess, kmip.ResultStatusSuccess, kmip.ResultStatusOperationFailed} {
		if res[i].ResultStatus != want {
			t.Errorf("batch item %d: %s (%s %s)", i, ttlv.EnumStr(res[i].ResultStatus), ttlv.EnumStr(res[i].ResultReason), res[i].ResultMessage)
		}
	}
	if res[3].ResultReason != kmip.ResultReasonOperationNotSupported {
		t.Errorf("Create Key Pair: %s, want Operation Not Supported", ttlv.EnumStr(res[3].ResultReason))
	}

	// KMIP 1.2 (PyKMIP's dialect): the tag travels at the end of the data.
	old, err := dialKMIP(t, addr, pki, pki.mongo, kmipclient.WithKmipVersions(kmip.V1_2))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	enc12 := mustCall[*payloads.EncryptResponsePayload](t, old, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("v1.2")})
	if len(enc12.Data) != 4+16 {
		t.Fatalf("KMIP 1.2 Encrypt data %d bytes, want ciphertext and tag", len(enc12.Data))
	}
	if d := mustCall[*payloads.DecryptResponsePayload](t, old, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc12.Data, IVCounterNonce: enc12.IVCounterNonce}); string(d.Data) != "v1.2" {
		t.Errorf("KMIP 1.2 Decrypt = %q", d.Data)
	}

	// Register known material.
	known := make([]byte, 32)
	_, _ = rand.Read(known)
	reg := mustCall[*payloads.RegisterResponsePayload](t, mongo, &payloads.RegisterRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: aesTemplate("registered", kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt),
		Object: &kmip.SymmetricKey{KeyBlock: kmip.KeyBlock{KeyFormatType: kmip.KeyFormatTypeRaw, CryptographicAlgorithm: kmip.CryptographicAlgorithmAES, CryptographicLength: 256,
			KeyValue: &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &known}}}}}})
	mustCall[*payloads.ActivateResponsePayload](t, mongo, &payloads.ActivateRequestPayload{UniqueIdentifier: reg.UniqueIdentifier})
	encR := mustCall[*payloads.EncryptResponsePayload](t, mongo, &payloads.EncryptRequestPayload{UniqueIdentifier: reg.UniqueIdentifier, Data: []byte("registered")})
	block, _ = aes.NewCipher(known)
	gcm, _ = cipher.NewGCM(block)
	if pt, err := gcm.Open(nil, encR.IVCounterNonce, append(encR.Data, encR.AuthenticatedEncryptionTag...), nil); err != nil || string(pt) != "registered" {
		t.Errorf("local open under the registered material = %q, %v", pt, err)
	}

	// Revoke (key compromise): no more encryption, decryption still works.
	mustCall[*payloads.RevokeResponsePayload](t, mongo, &payloads.RevokeRequestPayload{UniqueIdentifier: id,
		RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeKeyCompromise}})
	if st := stateOf(t, mongo, id); st != kmip.StateCompromised {
		t.Errorf("state after Revoke(compromise) = %s", ttlv.EnumStr(st))
	}
	wantReason(t, "encrypt compromised", mongo, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("x")}, kmip.ResultReasonIllegalOperation)
	mustCall[*payloads.DecryptResponsePayload](t, mongo, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc.Data, IVCounterNonce: enc.IVCounterNonce,
		AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag, AuthenticatedEncryptionAdditionalData: aad})
	// Destroy an active key: refused; a revoked one: crypto-shredded.
	wantReason(t, "destroy active", mongo, &payloads.DestroyRequestPayload{UniqueIdentifier: reg.UniqueIdentifier}, kmip.ResultReasonIllegalOperation)
	mustCall[*payloads.DestroyResponsePayload](t, mongo, &payloads.DestroyRequestPayload{UniqueIdentifier: id})
	if st := stateOf(t, mongo, id); st != kmip.StateDestroyed {
		t.Errorf("state after Destroy = %s", ttlv.EnumStr(st))
	}
	wantReason(t, "decrypt destroyed", mongo, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc.Data, IVCounterNonce: enc.IVCounterNonce,
		AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag, AuthenticatedEncryptionAdditionalData: aad}, kmip.ResultReasonIllegalOperation)

	// An untrusted certificate is refused at the handshake. (Checked with
	// crypto/tls directly: ovh/kmip-go v0.7.0's client races between its
	// read loop closing a channel and a send on it when the server drops
	// the connection, which -race reports.)
	refusedAtHandshake(t, addr, pki, pki.rogue)

	// Every decision is in the audit log.
	entries, err := rest.AuditTail(context.Background(), 500)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Principal+" "+e.Action+" "+e.Outcome] = true
	}
	for _, want := range []string{"kmip:mongo kmip.create allow", "kmip:mongo kmip.encrypt allow", "kmip:mongo kmip.get deny",
		"kmip:mongo kmip.get allow", "kmip:other kmip.encrypt deny", "kmip:mongo kmip.destroy ok", "kmip:mongo kmip.revoke ok"} {
		if !seen[want] {
			t.Errorf("audit log lacks %q", want)
		}
	}
	if v, err := rest.AuditVerify(context.Background()); err != nil || !v.OK {
		t.Errorf("audit verify = %+v, %v", v, err)
	}
}

// TestKMIPConfig checks the configuration's validation and environment.
func TestKMIPConfig(t *testing.T) {
	c := KMIPConfig{Listen: "127.0.0.1:5696"}
	if err := c.validate(); err == nil {
		t.Error("kmip without certificates validated")
	}
	c = KMIPConfig{}
	if err := c.validate(); err != nil {
		t.Errorf("kmip off: %v", err)
	}
	env := map[string]string{"KEYMESH_KMIP_LISTEN": "127.0.0.1:5696", "KEYMESH_KMIP_CERT": "s.pem", "KEYMESH_KMIP_KEY": "s.key",
		"KEYMESH_KMIP_CLIENT_CAS": "a.pem, b.pem", "KEYMESH_KMIP_NAMESPACE": "db"}
	var cfg Config
	if err := cfg.LoadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	want := KMIPConfig{Listen: "127.0.0.1:5696", Cert: "s.pem", Key: "s.key", ClientCAs: []string{"a.pem", "b.pem"}, Namespace: "db"}
	if !slices.Equal(cfg.KMIP.ClientCAs, want.ClientCAs) || cfg.KMIP.Listen != want.Listen || cfg.KMIP.Namespace != want.Namespace || cfg.KMIP.Cert != want.Cert || cfg.KMIP.Key != want.Key {
		t.Errorf("LoadEnv: %+v, want %+v", cfg.KMIP, want)
	}
	if err := cfg.KMIP.validate(); err != nil {
		t.Error(err)
	}
	cfg.KMIP.Namespace = "bad/ns"
	if err := cfg.KMIP.validate(); err == nil {
		t.Error("namespace with a slash validated")
	}
	// The config file's kmip section, as the README shows it.
	file := t.TempDir() + "/keymeshd.yaml"
	yaml := "data: /tmp/x\nkmip:\n  listen: 0.0.0.0:5696\n  cert: s.pem\n  key: s.key\n  client_cas: [a.pem]\n  namespace: kmip\n  max_keys_per_client: 5\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var fc Config
	if err := fc.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	if fc.KMIP.Listen != "0.0.0.0:5696" || !slices.Equal(fc.KMIP.ClientCAs, []string{"a.pem"}) || fc.KMIP.MaxKeysPerClient != 5 {
		t.Errorf("LoadFile kmip = %+v", fc.KMIP)
	}
}

// TestKMIPKeyCap checks the bound on the keys one client may create.
func TestKMIPKeyCap(t *testing.T) {
	pki := newKMIPPKI(t)
	n, _, stop := startKMIPNode(t, pki, func(c *KMIPConfig) { c.MaxKeysPerClient = 2 })
	defer stop()
	mongo, err := dialKMIP(t, n.KMIPAddr(), pki, pki.mongo)
	if err != nil {
		t.Fatal(err)
	}
	defer mongo.Close()
	create := &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("", usageAll)}
	mustCall[*payloads.CreateResponsePayload](t, mongo, create)
	mustCall[*payloads.CreateResponsePayload](t, mongo, create)
	wantReason(t, "third key of one client", mongo, create, kmip.ResultReasonPermissionDenied)
	other, err := dialKMIP(t, n.KMIPAddr(), pki, pki.other)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mustCall[*payloads.CreateResponsePayload](t, other, create)
}

// TestKMIPLocateFindsWhatTheCallerMaySee: Locate looks only at the keys a
// client owns over KMIP or has a grant or revocation on (not at every key
// of the node), and finds exactly those it may see: owned, or granted an
// operation now. A revoked grant, another client's grant and keys nobody
// granted it stay out.
func TestKMIPLocateFindsWhatTheCallerMaySee(t *testing.T) {
	pki := newKMIPPKI(t)
	n, admin, stop := startKMIPNode(t, pki)
	defer stop()
	ctx := context.Background()
	rest, err := client.New(n.URL(), admin)
	if err != nil {
		t.Fatal(err)
	}
	mongo, err := dialKMIP(t, n.KMIPAddr(), pki, pki.mongo)
	if err != nil {
		t.Fatal(err)
	}
	defer mongo.Close()
	other, err := dialKMIP(t, n.KMIPAddr(), pki, pki.other)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var owned []string
	for range 2 {
		cr := mustCall[*payloads.CreateResponsePayload](t, mongo, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("", usageAll)})
		owned = append(owned, cr.UniqueIdentifier)
	}
	for _, name := range []string{"app/granted", "app/revoked", "app/other", "app/nobody"} {
		if _, err := rest.CreateKey(ctx, apiv1.CreateKeyRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []apiv1.CreateGrantRequest{
		{Key: "app/granted", Party: "kmip:mongo", Ops: []string{"decrypt"}},
		{Key: "app/revoked", Party: "kmip:mongo", Ops: []string{"encrypt"}},
		{Key: "app/other", Party: "kmip:other", Ops: []string{"encrypt"}},
		{Key: "app/nobody", Party: "token:app", Ops: []string{"encrypt"}},
	} {
		if _, err := rest.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rest.Revoke(ctx, "app/revoked", "kmip:mongo"); err != nil {
		t.Fatal(err)
	}
	locate := func(c *kmipclient.Client) []string {
		t.Helper()
		ids := mustCall[*payloads.LocateResponsePayload](t, c, &payloads.LocateRequestPayload{}).UniqueIdentifier
		slices.Sort(ids)
		return ids
	}
	want := append(slices.Clone(owned), "app/granted")
	slices.Sort(want)
	if got := locate(mongo); !slices.Equal(got, want) {
		t.Errorf("mongo: Locate() = %v, want %v", got, want)
	}
	if got := locate(other); !slices.Equal(got, []string{"app/other"}) {
		t.Errorf("other: Locate() = %v, want [app/other]", got)
	}
	// What Locate looks at: the candidates, which include the revoked pair
	// (judged and dropped) and nothing mongo has no part in.
	cands := n.Member().KMIPCandidates("kmip:mongo")
	wantCands := append(slices.Clone(owned), "app/granted", "app/revoked")
	slices.Sort(wantCands)
	if !slices.Equal(cands, wantCands) {
		t.Errorf("KMIPCandidates(kmip:mongo) = %v, want %v", cands, wantCands)
	}
}
