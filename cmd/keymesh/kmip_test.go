package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"

	"github.com/keymesh/keymesh/kmip/kmiptest"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
)

// TestKeysShowsKMIP checks that `keymesh keys` and `keys show` list a key
// created over KMIP with its KMIP unique identifier, owner and names.
func TestKeysShowsKMIP(t *testing.T) {
	dir := t.TempDir()
	pkiDir := t.TempDir()
	serverCA, err := kmiptest.NewCA(pkiDir, "server")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := serverCA.Server(pkiDir, "server")
	clientCA, _ := kmiptest.NewCA(pkiDir, "clients")
	cl, err := clientCA.Client(pkiDir, "mongo", "mongodb-prod")
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{DataDir: dir, Listen: "127.0.0.1:0",
		KMIP: node.KMIPConfig{Listen: "127.0.0.1:0", Cert: srv.CertFile, Key: srv.KeyFile, ClientCAs: []string{clientCA.File}}}
	if _, err := node.Init(cfg, node.AdminTokenFile(dir)); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("node did not stop")
		}
	}()
	c, err := kmipclient.Dial(n.KMIPAddr(), kmipclient.WithRootCAFile(serverCA.File), kmipclient.WithClientCertFiles(cl.CertFile, cl.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Request(context.Background(), &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
			{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "users-cmk", NameType: kmip.NameTypeUninterpretedTextString}},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	uid := resp.(*payloads.CreateResponsePayload).UniqueIdentifier
	tok, err := os.ReadFile(node.AdminTokenFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEYMESH_ADDR": n.Addr(), "KEYMESH_TOKEN": strings.TrimSpace(string(tok))}
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] }); code != 0 {
			t.Fatalf("keymesh %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	list := cli("keys", "list")
	if !strings.Contains(list, "KMIP-UID") || !strings.Contains(list, uid) || !strings.Contains(list, "users-cmk") || !strings.Contains(list, "kmip") {
		t.Errorf("keymesh keys:\n%s", list)
	}
	show := cli("keys", "show", uid)
	for _, want := range []string{"KMIP unique id:", uid, "kmip:mongodb-prod", "users-cmk", "pre-active"} {
		if !strings.Contains(show, want) {
			t.Errorf("keymesh keys show lacks %q:\n%s", want, show)
		}
	}
	var k apiv1.Key
	if err := json.Unmarshal([]byte(cli("keys", "show", uid, "-o", "json")), &k); err != nil {
		t.Fatal(err)
	}
	if k.KMIP == nil || k.KMIP.UID != uid || k.KMIP.Owner != "kmip:mongodb-prod" || !slices.Equal(k.KMIP.Names, []string{"users-cmk"}) {
		t.Errorf("keys show -o json: kmip = %+v", k.KMIP)
	}
}
