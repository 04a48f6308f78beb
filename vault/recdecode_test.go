package vault

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func randomKeyRecord(rng *mrand.Rand) keyRecord {
	at := func() time.Time {
		t := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9))
		if rng.IntN(2) == 0 {
			return t.UTC()
		}
		return t.In(time.FixedZone("", 3600*(rng.IntN(25)-12)))
	}
	names := []string{"demo/a", "org-1/key_9", "a", "", "x/y.z~", `q"uote`, `back\slash`, "tab\tname", "ünï", "del\x7f"}
	r := keyRecord{
		Name: names[rng.IntN(len(names))], Owner: names[rng.IntN(len(names))],
		State: State(rng.IntN(256)), Deterministic: rng.IntN(2) == 0, Exportable: rng.IntN(2) == 0,
		Created: at(), StateChanged: at(), MinDecrypt: rng.Uint32(),
	}
	if rng.IntN(8) != 0 {
		r.Versions = []versionRecord{}
	}
	for range rng.IntN(4) {
		v := versionRecord{Version: rng.Uint32(), Created: at(), ActivateAt: at(), Reserved: rng.Uint64() >> rng.IntN(64),
			Destroyed: rng.IntN(3) == 0, NotHeld: rng.IntN(3) == 0, UsedEpoch: uint64(rng.IntN(3))}
		if rng.IntN(2) == 0 {
			u := rng.Uint64() >> rng.IntN(64)
			v.Used = &u
		}
		r.Versions = append(r.Versions, v)
	}
	return r
}

// checkSameAsJSON fails unless decodeKeyRecord and json.Unmarshal agree
// on data: both refuse it, or both decode it to the same record.
func checkSameAsJSON(t *testing.T, data []byte) {
	t.Helper()
	var got, want keyRecord
	gerr := decodeKeyRecord(data, &got)
	werr := json.Unmarshal(data, &want)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("decodeKeyRecord(%q) = %v, json.Unmarshal = %v", data, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeKeyRecord(%q) = %+v, want %+v (json.Unmarshal)", data, got, want)
	}
}

// TestDecodeKeyRecordMatchesJSON: the direct parser of key records
// decodes what json.Marshal writes to what json.Unmarshal makes of it,
// and any other input (edited, reordered, spaced, cut, overflowing) is
// decoded or refused exactly as json.Unmarshal does.
func TestDecodeKeyRecordMatchesJSON(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 7))
	fast := 0
	for range 2000 {
		rec := randomKeyRecord(rng)
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		checkSameAsJSON(t, data)
		if p := (recParser{b: data}); p.record(new(keyRecord)) && p.i == len(data) {
			fast++
		}
		// Every cut, and a change at a random place.
		checkSameAsJSON(t, data[:rng.IntN(len(data))])
		edited := []byte(string(data))
		const edits = "0123456789{}[]\",: -.eEtrufalsn\\\x00\xff"
		edited[rng.IntN(len(edited))] = edits[rng.IntN(len(edits))]
		checkSameAsJSON(t, edited)
	}
	// Half the names need escapes or are not ASCII: about a quarter of
	// the records have both names plain and take the direct parser.
	if fast < 300 {
		t.Errorf("only %d of 2000 records took the direct parser", fast)
	}
	for _, s := range []string{
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[]}`,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":null}`,
		`{"name":"a","owner":"b","state":256,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[]}`,
		`{"name":"a","owner":"b","state":02,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[]}`,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":4294967296,"versions":[]}`,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-13-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[]}`,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[{"version":1,"created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","reserved":18446744073709551616}]}`,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[{"version":1,"created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","reserved":3,"destroyed":true,"not_held":true,"used":2,"used_epoch":0}]}`,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[{"version":1,"created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","reserved":3}]} `,
		`{"name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[{"version":1,"created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","reserved":3}]}x`,
		`{"name":"a","name":"b","owner":"b","state":2}`,
		`{"Name":"a","owner":"b","state":2,"deterministic":false,"exportable":false,"created":"2026-01-01T00:00:00Z","state_changed":"2026-01-01T00:00:00Z","min_decryption_version":1,"versions":[]}`,
		`{"owner":"b","name":"a"}`,
		`{"name":"a\u0041"}`,
		`{}`, `null`, ``, `[]`,
	} {
		t.Run(fmt.Sprintf("%.40s", strings.ReplaceAll(s, `"`, "")), func(t *testing.T) { checkSameAsJSON(t, []byte(s)) })
	}
}

func FuzzDecodeKeyRecord(f *testing.F) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 8 {
		data, _ := json.Marshal(randomKeyRecord(rng))
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkSameAsJSON(t, data) })
}
