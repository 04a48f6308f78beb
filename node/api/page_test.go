package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// TestListPages: GET /v1/keys and GET /v1/grants answer pages whose
// concatenation is the whole listing, in order, and refuse a bad limit or
// cursor.
func TestListPages(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		body := fmt.Sprintf(`{"name":"page/k%d"}`, i)
		if code, e, _ := f.do(t, "POST", "/v1/keys", f.admin, strings.NewReader(body)); code != 201 {
			t.Fatalf("POST /v1/keys = %d %+v", code, e)
		}
		body = fmt.Sprintf(`{"key":"page/k%d","party":"token:p%d","ops":["encrypt"]}`, i%2, i)
		if code, e, _ := f.do(t, "POST", "/v1/grants", f.admin, strings.NewReader(body)); code != 201 {
			t.Fatalf("POST /v1/grants = %d %+v", code, e)
		}
	}
	var names []string
	after := ""
	for range 10 {
		code, e, b := f.do(t, "GET", "/v1/keys?limit=2&after="+url.QueryEscape(after), f.admin, nil)
		if code != 200 {
			t.Fatalf("GET /v1/keys = %d %+v", code, e)
		}
		var page apiv1.KeyList
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Keys) > 2 {
			t.Fatalf("page of %d keys, want at most 2", len(page.Keys))
		}
		for _, k := range page.Keys {
			names = append(names, k.Name)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	want := "demo/k page/k0 page/k1 page/k2 page/k3 page/k4"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("keys over pages = %q, want %q", got, want)
	}

	var all apiv1.GrantList
	if code, e, b := f.do(t, "GET", "/v1/grants", f.admin, nil); code != 200 || json.Unmarshal(b, &all) != nil {
		t.Fatalf("GET /v1/grants = %d %+v", code, e)
	}
	if len(all.Grants) != 6 || all.Next != "" {
		t.Fatalf("GET /v1/grants: %d grants, next %q, want 6 and none", len(all.Grants), all.Next)
	}
	var ids []string
	after = ""
	for range 10 {
		code, e, b := f.do(t, "GET", "/v1/grants?limit=4&after="+url.QueryEscape(after), f.admin, nil)
		if code != 200 {
			t.Fatalf("GET /v1/grants page = %d %+v", code, e)
		}
		var page apiv1.GrantList
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		for _, g := range page.Grants {
			ids = append(ids, g.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	for i, g := range all.Grants {
		if i >= len(ids) || ids[i] != g.ID {
			t.Fatalf("grants over pages = %v, want the order of the full listing", ids)
		}
	}
	if len(ids) != len(all.Grants) {
		t.Fatalf("grants over pages: %d, want %d", len(ids), len(all.Grants))
	}
	for _, path := range []string{"/v1/keys?limit=0", "/v1/keys?limit=10001", "/v1/grants?limit=x", "/v1/grants?after=%25%25"} {
		if code, _, _ := f.do(t, "GET", path, f.admin, nil); code != 400 {
			t.Errorf("GET %s = %d, want 400", path, code)
		}
	}
}
