package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"

	"github.com/keymesh/keymesh/kmip/kmiptest"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
)

// failoverPKI is a server CA and certificate and a client CA with one
// client, "mongo".
type failoverPKI struct {
	serverCA, clientCA *kmiptest.CA
	server, mongo      kmiptest.Pair
}

func newFailoverPKI(t *testing.T) *failoverPKI {
	t.Helper()
	dir := t.TempDir()
	p := &failoverPKI{}
	var err error
	for _, step := range []func() error{
		func() error { p.serverCA, err = kmiptest.NewCA(dir, "server"); return err },
		func() error { p.server, err = p.serverCA.Server(dir, "server"); return err },
		func() error { p.clientCA, err = kmiptest.NewCA(dir, "clients"); return err },
		func() error { p.mongo, err = p.clientCA.Client(dir, "mongo", "mongo"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *failoverPKI) dial(t *testing.T, addr string) *kmipclient.Client {
	t.Helper()
	c, err := kmipclient.Dial(addr, kmipclient.WithRootCAFile(p.serverCA.File), kmipclient.WithClientCertFiles(p.mongo.CertFile, p.mongo.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// try sends one payload and returns its response payload, or the result
// reason of a failure.
func try(t *testing.T, c *kmipclient.Client, pl kmip.OperationPayload) (kmip.OperationPayload, kmip.ResultReason) {
	t.Helper()
	res, err := c.Batch(context.Background(), pl)
	if err != nil {
		t.Fatalf("%T: %v", pl, err)
	}
	if res[0].ResultStatus != kmip.ResultStatusSuccess {
		return nil, res[0].ResultReason
	}
	return res[0].ResponsePayload, 0
}

func must[R kmip.OperationPayload](t *testing.T, c *kmipclient.Client, pl kmip.OperationPayload) R {
	t.Helper()
	resp, reason := try(t, c, pl)
	if reason != 0 {
		t.Fatalf("%T: %s", pl, ttlv.EnumStr(reason))
	}
	return resp.(R)
}

// sharedKMIPPort finds a port free on both 127.0.0.1 and 127.0.0.2: KMIP
// clients (PyKMIP, MongoDB) list servers by host with one port.
func sharedKMIPPort(t *testing.T) string {
	t.Helper()
	for range 20 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l1.Addr().(*net.TCPAddr).Port)
		l2, err := net.Listen("tcp", "127.0.0.2:"+port)
		l1.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	return ""
}

// TestKMIPFailover runs two nodes of one org, each with a KMIP server: a
// key created over KMIP at the first is found, read and used at the
// second within the mesh's propagation; with the first stopped, PyKMIP
// configured with both servers keeps working against the second.
func TestKMIPFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two mesh nodes")
	}
	pki := newFailoverPKI(t)
	port := sharedKMIPPort(t)
	m := nodetest.NewMesh(t, []string{"Org1MSP"})
	kcfg := func(host string) nodetest.Option {
		return nodetest.WithConfig(func(c *node.Config) {
			c.KMIP = node.KMIPConfig{Listen: net.JoinHostPort(host, port), Cert: pki.server.CertFile, Key: pki.server.KeyFile,
				ClientCAs: []string{pki.clientCA.File}, Namespace: "orders"}
		})
	}
	first := m.Start("org1-a", "Org1MSP", kcfg("127.0.0.1"))
	second := m.Start("org1-b", "Org1MSP", kcfg("127.0.0.2"))

	c1 := pki.dial(t, first.Node.KMIPAddr())
	defer c1.Close()
	tpl := kmip.TemplateAttribute{Attribute: []kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt | kmip.CryptographicUsageExport},
		{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "orders-cmk", NameType: kmip.NameTypeUninterpretedTextString}},
	}}
	cr := must[*payloads.CreateResponsePayload](t, c1, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: tpl})
	id := cr.UniqueIdentifier
	must[*payloads.ActivateResponsePayload](t, c1, &payloads.ActivateRequestPayload{UniqueIdentifier: id})
	if _, err := first.Admin.CreateGrant(context.Background(), apiv1.CreateGrantRequest{Key: id, Party: "kmip:mongo", Ops: []string{"export"}}); err != nil {
		t.Fatal(err)
	}
	enc := must[*payloads.EncryptResponsePayload](t, c1, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("written at the first node")})
	got1 := must[*payloads.GetResponsePayload](t, c1, &payloads.GetRequestPayload{UniqueIdentifier: id})
	m1, _ := got1.Object.(*kmip.SymmetricKey).KeyMaterial()

	// The second node serves the same object once the events arrive.
	c2 := pki.dial(t, second.Node.KMIPAddr())
	defer c2.Close()
	nodetest.Eventually(t, 15*time.Second, "the key usable at the second node", func(context.Context) bool {
		res, err := c2.Batch(context.Background(), &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc.Data,
			IVCounterNonce: enc.IVCounterNonce, AuthenticatedEncryptionTag: enc.AuthenticatedEncryptionTag})
		return err == nil && res[0].ResultStatus == kmip.ResultStatusSuccess
	})
	nodetest.Eventually(t, 15*time.Second, "the KMIP attributes and the export grant at the second node", func(context.Context) bool {
		loc, reason := try(t, c2, &payloads.LocateRequestPayload{Attribute: []kmip.Attribute{{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "orders-cmk"}}}})
		if reason != 0 || !slices.Equal(loc.(*payloads.LocateResponsePayload).UniqueIdentifier, []string{id}) {
			return false
		}
		_, reason = try(t, c2, &payloads.GetRequestPayload{UniqueIdentifier: id})
		return reason == 0
	})
	ga := must[*payloads.GetAttributesResponsePayload](t, c2, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmip.AttributeName{kmip.AttributeNameState}})
	if len(ga.Attribute) != 1 || ga.Attribute[0].AttributeValue != kmip.StateActive {
		t.Errorf("state at the second node = %+v", ga.Attribute)
	}
	got2 := must[*payloads.GetResponsePayload](t, c2, &payloads.GetRequestPayload{UniqueIdentifier: id})
	if m2, _ := got2.Object.(*kmip.SymmetricKey).KeyMaterial(); len(m1) != 32 || !bytes.Equal(m1, m2) {
		t.Error("the two nodes export different material for one KMIP object")
	}
	enc2 := must[*payloads.EncryptResponsePayload](t, c2, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: []byte("written at the second node")})
	if d := must[*payloads.DecryptResponsePayload](t, c1, &payloads.DecryptRequestPayload{UniqueIdentifier: id, Data: enc2.Data,
		IVCounterNonce: enc2.IVCounterNonce, AuthenticatedEncryptionTag: enc2.AuthenticatedEncryptionTag}); string(d.Data) != "written at the second node" {
		t.Errorf("first node decrypts the second's ciphertext as %q", d.Data)
	}

	// PyKMIP with both servers: the first answers; stopped, the second.
	if !pykmipInstalled(t) {
		return
	}
	conf := filepath.Join(t.TempDir(), "pykmip.conf")
	if err := os.WriteFile(conf, []byte("[client]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]any{"hosts": "127.0.0.1,127.0.0.2", "port": port, "ca": pki.serverCA.File, "conf": conf,
		"cert": pki.mongo.CertFile, "key": pki.mongo.KeyFile, "uid": id, "name": "orders-cmk",
		"ciphertext": hex.EncodeToString(append(slices.Clone(enc.Data), enc.AuthenticatedEncryptionTag...)), "iv": hex.EncodeToString(enc.IVCounterNonce)}
	for i, wantHost := range []string{"127.0.0.1", "127.0.0.2"} {
		if i == 1 {
			c1.Close()
			first.Stop()
		}
		res := runPyKMIP(t, "use", env)
		if res["host"] != wantHost || res["state"] != "ACTIVE" || res["local_decrypt"] != "written at the first node" ||
			res["server_decrypt"] != "written at the first node" || res["roundtrip"] != "after failover" {
			t.Errorf("PyKMIP via %s: %v", wantHost, res)
		}
		if loc, _ := res["located"].([]any); !slices.Equal(loc, []any{id}) {
			t.Errorf("PyKMIP via %s: located %v", wantHost, loc)
		}
	}
}

// pykmipInstalled reports whether Debian's PyKMIP is importable; without
// it the test fails under CI and otherwise says it is skipping the PyKMIP
// part.
func pykmipInstalled(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import kmip.pie.client, cryptography").CombinedOutput()
	if err == nil {
		return true
	}
	msg := "PyKMIP is not installed (apt-get install python3-pykmip): " + strings.TrimSpace(string(out))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Log("skipping the PyKMIP part: " + msg)
	return false
}

func runPyKMIP(t *testing.T, step string, cfg map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "../cmd/keymeshd/testdata/pykmip_e2e.py", step, string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pykmip %s: %v\n%s", step, err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pykmip %s: %q: %v", step, out, err)
	}
	t.Logf("pykmip %s: %s", step, out)
	return res
}
