package client

import (
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keymesh/keymesh/node/apiv1"
)

// The OpenAPI document must describe exactly the routes this client calls,
// and its schemas must carry exactly the JSON fields of the apiv1 types. (The
// server's test, in node/api, holds the document to the router.)

type openAPIDoc struct {
	OpenAPI    string                    `yaml:"openapi"`
	Info       map[string]any            `yaml:"info"`
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]struct {
			Type       string                    `yaml:"type"`
			Required   []string                  `yaml:"required"`
			Properties map[string]map[string]any `yaml:"properties"`
		} `yaml:"schemas"`
		SecuritySchemes map[string]map[string]any `yaml:"securitySchemes"`
	} `yaml:"components"`
}

func loadOpenAPI(t *testing.T) (*openAPIDoc, []byte) {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return &doc, b
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPIRoutesMatchClient(t *testing.T) {
	t.Parallel()
	doc, _ := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method, v := range item {
			if !slices.Contains(httpMethods, method) {
				continue // parameters, summary, …
			}
			op, _ := v.(map[string]any)
			route := strings.ToUpper(method) + " " + path
			documented = append(documented, route)

			// /v1 routes need the bearer token; the others none.
			sec, _ := op["security"].([]any)
			wantAuth := strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/eth/") // eth routes take a wallet signature
			hasAuth := false
			for _, s := range sec {
				if m, ok := s.(map[string]any); ok {
					_, hasAuth = m["bearerAuth"]
				}
			}
			if hasAuth != wantAuth {
				t.Errorf("%s: bearerAuth = %v, want %v", route, hasAuth, wantAuth)
			}
		}
	}
	var called []string
	for _, rc := range routeCases {
		if !slices.Contains(called, rc.route) {
			called = append(called, rc.route)
		}
	}
	sort.Strings(documented)
	sort.Strings(called)
	if !slices.Equal(documented, called) {
		t.Errorf("docs/openapi.yaml routes:\n\t%s\nclient routes:\n\t%s", strings.Join(documented, "\n\t"), strings.Join(called, "\n\t"))
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("securitySchemes.bearerAuth = %v, want http bearer", s)
	}
}

func TestOpenAPISchemasMatchAPIv1(t *testing.T) {
	t.Parallel()
	doc, raw := loadOpenAPI(t)
	types := map[string]any{
		"Error": apiv1.Error{}, "ErrorResponse": apiv1.ErrorResponse{}, "Health": apiv1.Health{},
		"Status": apiv1.Status{}, "CreateKeyRequest": apiv1.CreateKeyRequest{}, "Key": apiv1.Key{},
		"KeyVersion": apiv1.KeyVersion{}, "KeyList": apiv1.KeyList{}, "RotateKeyRequest": apiv1.RotateKeyRequest{},
		"SetKeyStateRequest": apiv1.SetKeyStateRequest{}, "KeyConfigRequest": apiv1.KeyConfigRequest{},
		"DestroyKeyRequest": apiv1.DestroyKeyRequest{}, "EncryptRequest": apiv1.EncryptRequest{},
		"EncryptItem": apiv1.EncryptItem{}, "EncryptResponse": apiv1.EncryptResponse{},
		"EncryptResult": apiv1.EncryptResult{}, "DecryptRequest": apiv1.DecryptRequest{},
		"DecryptItem": apiv1.DecryptItem{}, "DecryptResponse": apiv1.DecryptResponse{},
		"DecryptResult": apiv1.DecryptResult{}, "CreateGrantRequest": apiv1.CreateGrantRequest{},
		"Grant": apiv1.Grant{}, "GrantList": apiv1.GrantList{}, "RevokeRequest": apiv1.RevokeRequest{},
		"Revocation": apiv1.Revocation{}, "CreateTokenRequest": apiv1.CreateTokenRequest{},
		"Token": apiv1.Token{}, "CreatedToken": apiv1.CreatedToken{}, "TokenList": apiv1.TokenList{},
		"AuditEntry": apiv1.AuditEntry{}, "AuditList": apiv1.AuditList{}, "AuditVerify": apiv1.AuditVerify{},
		"FIPSStatus": apiv1.FIPSStatus{},
	}
	checkSchemas(t, doc, types, func(name string) bool {
		return strings.HasSuffix(name, "Request") || strings.HasSuffix(name, "Item")
	})

	// Every $ref points at a defined component.
	var all struct {
		Components map[string]map[string]any `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		_, ref, ok := strings.Cut(line, `$ref: "#/components/`)
		if !ok {
			continue
		}
		ref, _, _ = strings.Cut(ref, `"`)
		kind, name, _ := strings.Cut(ref, "/")
		if _, ok := all.Components[kind][name]; !ok {
			t.Errorf("$ref #/components/%s/%s is not defined", kind, name)
		}
	}
}

func TestOpenAPIErrorCodesAndLimits(t *testing.T) {
	t.Parallel()
	doc, raw := loadOpenAPI(t)
	codes := []string{
		apiv1.CodeInvalidRequest, apiv1.CodeInvalidCiphertext, apiv1.CodeDecryptionFailed,
		apiv1.CodeUnauthenticated, apiv1.CodeForbidden, apiv1.CodeNotGranted, apiv1.CodeNotFound,
		apiv1.CodeConflict, apiv1.CodeKeyNotUsable, apiv1.CodeKeyDestroyed, apiv1.CodeTooLarge,
		apiv1.CodeUnavailable, apiv1.CodeInternal, apiv1.CodeInvalidCreator, apiv1.CodeNoSpace,
		apiv1.CodeFIPSUnsupported,
	}
	var enum []string
	for _, e := range doc.Components.Schemas["Error"].Properties["code"]["enum"].([]any) {
		enum = append(enum, e.(string))
	}
	sort.Strings(codes)
	sort.Strings(enum)
	if !slices.Equal(codes, enum) {
		t.Errorf("Error.code enum = %v, want %v", enum, codes)
	}

	limits, _ := doc.Info["x-keymesh-limits"].(map[string]any)
	for name, want := range map[string]int{
		"maxBodyBytes": apiv1.MaxBodyBytes, "maxBatchItems": apiv1.MaxBatchItems, "maxListLimit": apiv1.MaxListLimit,
	} {
		if got, _ := limits[name].(int); got != want {
			t.Errorf("x-keymesh-limits.%s = %v, want %d", name, limits[name], want)
		}
	}
	for _, s := range []string{"EncryptRequest", "EncryptResponse", "DecryptRequest", "DecryptResponse"} {
		if got, _ := doc.Components.Schemas[s].Properties["batch"]["maxItems"].(int); got != apiv1.MaxBatchItems {
			t.Errorf("%s.batch maxItems = %d, want %d", s, got, apiv1.MaxBatchItems)
		}
	}
	if !strings.Contains(string(raw), "maximum: 1000") || apiv1.MaxListLimit != 1000 {
		t.Errorf("the audit limit parameter's maximum is not MaxListLimit")
	}
}

// checkSchemas compares each named schema of the document with the JSON
// fields of its apiv1 type: the same properties, only existing fields
// required, and — unless isRequest(name) — every field sent always (no
// omitempty) marked required.
func checkSchemas(t *testing.T, doc *openAPIDoc, types map[string]any, isRequest func(string) bool) {
	t.Helper()
	for name, v := range types {
		t.Run(name, func(t *testing.T) {
			s, ok := doc.Components.Schemas[name]
			if !ok {
				t.Fatalf("no schema %s", name)
			}
			var fields, always []string
			rt := reflect.TypeOf(v)
			for i := 0; i < rt.NumField(); i++ {
				tag, opts, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
				fields = append(fields, tag)
				if !strings.Contains(opts, "omitempty") {
					always = append(always, tag)
				}
			}
			var props []string
			for p := range s.Properties {
				props = append(props, p)
			}
			sort.Strings(fields)
			sort.Strings(props)
			if !slices.Equal(fields, props) {
				t.Errorf("schema %s properties = %v, want the JSON fields of apiv1.%s %v", name, props, name, fields)
			}
			for _, r := range s.Required {
				if !slices.Contains(fields, r) {
					t.Errorf("schema %s requires %q, which apiv1.%s lacks", name, r, name)
				}
			}
			if isRequest(name) {
				return
			}
			for _, f := range always {
				if !slices.Contains(s.Required, f) {
					t.Errorf("schema %s: %q is always sent but not required", name, f)
				}
			}
		})
	}
}
