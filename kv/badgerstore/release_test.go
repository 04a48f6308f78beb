package badgerstore

import (
	"strconv"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		want mapping
	}{
		{"7f3a2c000000-7f3a2c080000 r--s 00000000 fd:01 1835023                    /var/lib/keymesh/db/000012.sst", true,
			mapping{0x7f3a2c000000, 0x7f3a2c080000, "/var/lib/keymesh/db/000012.sst"}},
		{"00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon", true, mapping{0x400000, 0x452000, "/usr/bin/dbus-daemon"}},
		{"c000000000-c004000000 rw-p 00000000 00:00 0 ", true, mapping{0xc000000000, 0xc004000000, ""}},
		{"c000000000-c004000000 rw-p 00000000 00:00 0", true, mapping{0xc000000000, 0xc004000000, ""}},
		{"7ffd5b1e4000-7ffd5b205000 rw-p 00000000 00:00 0                          [stack]", true, mapping{0x7ffd5b1e4000, 0x7ffd5b205000, "[stack]"}},
		{"7f00-7f10 r--s 00000000 fd:01 12 /data dir/with spaces/db/000001.vlog", true, mapping{0x7f00, 0x7f10, "/data dir/with spaces/db/000001.vlog"}},
		{"7f00-7f10 r--s 00000000 fd:01 12 /srv/db/000003.sst (deleted)", true, mapping{0x7f00, 0x7f10, "/srv/db/000003.sst (deleted)"}},
		{"", false, mapping{}},
		{"Rss:                 132 kB", false, mapping{}},
		{"VmFlags: rd mr me sd", false, mapping{}},
		{"7f10-7f00 r--s 00000000 fd:01 12 /x.sst", false, mapping{}}, // empty or inverted range
		{"7f00-7f00 r--s 00000000 fd:01 12 /x.sst", false, mapping{}},
		{"zz00-7f10 r--s 00000000 fd:01 12 /x.sst", false, mapping{}},
		{"7f00-7f10 r--s 00000000", false, mapping{}}, // fields missing
		{"7f00-", false, mapping{}},
	} {
		got, ok := parseMapsLine(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("parseMapsLine(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestStoreFile(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/srv/km/db/000012.sst", true},
		{"/srv/km/db/000001.vlog", true},
		{"/srv/km/db/00001.mem", false},            // written through its mapping
		{"/srv/km/db/000012.sst (deleted)", false}, // going away
		{"/srv/km/db/sub/000012.sst", false},
		{"/srv/km/dbx/000012.sst", false},
		{"/srv/km/000012.sst", false},
		{"/srv/km/db/MANIFEST", false},
		{"", false},
		{"[heap]", false},
	} {
		if got := storeFile("/srv/km/db", c.path); got != c.want {
			t.Errorf("storeFile(/srv/km/db, %q) = %v, want %v", c.path, got, c.want)
		}
	}
}

// FuzzParseMapsLine: any line parses without panicking, to a non-empty
// range, and a parsed mapping printed back as the kernel prints it parses
// to itself.
func FuzzParseMapsLine(f *testing.F) {
	for _, s := range []string{
		"7f3a2c000000-7f3a2c080000 r--s 00000000 fd:01 1835023                    /var/lib/keymesh/db/000012.sst",
		"c000000000-c004000000 rw-p 00000000 00:00 0 ",
		"7f00-7f10 r--s 00000000 fd:01 12 /data dir/with spaces/db/000001.vlog",
		"7f00-7f10 r--s 00000000 fd:01 12 /srv/db/000003.sst (deleted)",
		"Rss:                 132 kB",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := parseMapsLine(line)
		if !ok {
			return
		}
		if m.hi <= m.lo {
			t.Fatalf("parseMapsLine(%q) = %+v: empty range", line, m)
		}
		again := fmtMapping(m)
		if m2, ok := parseMapsLine(again); !ok || m2 != m {
			t.Fatalf("parseMapsLine(%q) = %+v, %v; want %+v (from %q)", again, m2, ok, m, line)
		}
	})
}

func fmtMapping(m mapping) string {
	return strconv.FormatUint(m.lo, 16) + "-" + strconv.FormatUint(m.hi, 16) + " r--s 00000000 fd:01 12 " + m.path
}

func TestStatmShared(t *testing.T) {
	for _, c := range []struct {
		line string
		want int64
		ok   bool
	}{
		{"311563 70386 11512 8912 0 73839 0\n", 11512, true},
		{"1 2 3", 3, true},
		{"1 2", 0, false},
		{"", 0, false},
		{"1 2 x 4", 0, false},
		{"1 2 -3 4", 0, false},
		{"1 2 99999999999999999999 4", 0, false},
	} {
		got, err := statmShared(c.line)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("statmShared(%q) = %d, %v; want %d, ok %v", c.line, got, err, c.want, c.ok)
		}
	}
}

// FuzzStatmShared: any line parses without panicking, to a count that is
// never negative.
func FuzzStatmShared(f *testing.F) {
	for _, s := range []string{"311563 70386 11512 8912 0 73839 0\n", "1 2", "1 2 -3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if n, err := statmShared(line); err == nil && n < 0 {
			t.Fatalf("statmShared(%q) = %d", line, n)
		}
	})
}
