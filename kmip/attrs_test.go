package kmip

import (
	"bytes"
	"os"
	"strings"
	"testing"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// TestStoredAttrEncoding pins how an attribute is stored and mirrored
// (Attr.TTLV): the TTLV of a KMIP Attribute structure. The event vectors
// (event/testdata/vectors.json, kmip-attrs) carry this very encoding.
func TestStoredAttrEncoding(t *testing.T) {
	attrs, err := encodeAttrs([]kmip.Attribute{{AttributeName: kmip.AttributeNameName,
		AttributeValue: kmip.Name{NameValue: "db-master", NameType: kmip.NameTypeUninterpretedTextString}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("\x42\x00\x08\x01\x00\x00\x00\x40\x42\x00\x0a\x07\x00\x00\x00\x04Name\x00\x00\x00\x00" +
		"\x42\x00\x0b\x01\x00\x00\x00\x28\x42\x00\x55\x07\x00\x00\x00\x09db-master\x00\x00\x00\x00\x00\x00\x00" +
		"\x42\x00\x54\x05\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00")
	if len(attrs) != 1 || !bytes.Equal(attrs[0].TTLV, want) || attrs[0].Name != "Name" || attrs[0].Index != 0 {
		t.Fatalf("encodeAttrs = %+v\nTTLV %x\nwant %x", attrs, attrs[0].TTLV, want)
	}
	back, err := decodeAttrs(attrs)
	if err != nil || len(back) != 1 || back[0].AttributeValue.(kmip.Name).NameValue != "db-master" {
		t.Fatalf("decodeAttrs = %+v, %v", back, err)
	}
	vec, err := os.ReadFile("../event/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(vec), `"kmip-attrs"`) {
		t.Error("the event vectors have no kmip-attrs event")
	}
}

// TestWellFormed checks the framing check on the inputs it exists for.
func TestWellFormed(t *testing.T) {
	msg := kmip.NewRequestMessage(kmip.V1_4, &kmip.UnknownPayload{})
	good := ttlv.MarshalTTLV(&msg)
	if err := wellFormed(good); err != nil {
		t.Fatalf("a real request: %v", err)
	}
	deep := []byte{}
	for i := range MaxDepth + 2 {
		n := 8 * (MaxDepth + 1 - i)
		deep = append(deep, 0x42, 0x00, 0x78, 0x01, 0, 0, byte(n>>8), byte(n))
	}
	for name, b := range map[string][]byte{
		"empty":              {},
		"short header":       good[:5],
		"trailing":           append(append([]byte{}, good...), 0),
		"misaligned struct":  []byte("\x42\x00\x78\x01\x00\x00\x00\x01\x30\x30\x30\x30\x30\x30\x30\x30"),
		"overrun":            []byte("\x42\x00\x78\x01\x00\x00\x01\x00"),
		"bad tag":            []byte("\x00\x00\x78\x01\x00\x00\x00\x00"),
		"bad type":           []byte("\x42\x00\x78\x0b\x00\x00\x00\x00"),
		"integer length":     []byte("\x42\x00\x78\x01\x00\x00\x00\x10\x42\x00\x01\x02\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00"),
		"string past parent": []byte("\x42\x00\x78\x01\x00\x00\x00\x10\x42\x00\x01\x07\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00"),
		"too deep":           deep,
	} {
		if err := wellFormed(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
