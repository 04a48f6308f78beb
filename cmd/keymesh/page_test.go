package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
)

// nodeCLI runs the CLI in-process against n with its admin token.
func nodeCLI(t *testing.T, n *nodetest.Node) func(args ...string) result {
	env := map[string]string{envAddr: n.Node.Addr(), envToken: strings.TrimSpace(n.AdminToken)}
	return func(args ...string) result {
		t.Helper()
		return runCLI(t, env, "", args...)
	}
}

func mustRun(t *testing.T, r result, what string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d, stderr %q", what, r.code, r.stderr)
	}
	return r
}

// tableRows splits a table's output into its data rows' first column and
// its "next:" line, if any.
func tableRows(t *testing.T, out string) (first []string, next string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, l := range lines[1:] {
		if n, ok := strings.CutPrefix(l, "next: --after "); ok {
			if i != len(lines)-2 {
				t.Errorf("next line %q is not the last line of\n%s", l, out)
			}
			next = n
			continue
		}
		first = append(first, strings.Fields(l)[0])
	}
	return first, next
}

// TestKeysListPages: --limit lists one page and names the next, --after
// resumes there, and walking the pages gives what one unpaged listing gives.
func TestKeysListPages(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t)
	cli := nodeCLI(t, n)
	n.CreateKeys(t, "demo/a", "demo/b", "demo/c", "demo/d", "demo/e")

	all, next := tableRows(t, mustRun(t, cli("keys", "list"), "keys list").stdout)
	if !slices.Equal(all, []string{"demo/a", "demo/b", "demo/c", "demo/d", "demo/e"}) || next != "" {
		t.Fatalf("keys list = %q, next %q", all, next)
	}

	got, next := tableRows(t, mustRun(t, cli("keys", "list", "--limit", "2"), "keys list --limit 2").stdout)
	if !slices.Equal(got, []string{"demo/a", "demo/b"}) || next != "demo/b" {
		t.Errorf("keys list --limit 2 = %q, next %q; want demo/a demo/b, next demo/b", got, next)
	}
	got, next = tableRows(t, mustRun(t, cli("keys", "list", "--limit", "2", "--after", "demo/b"), "page 2").stdout)
	if !slices.Equal(got, []string{"demo/c", "demo/d"}) || next != "demo/d" {
		t.Errorf("keys list --limit 2 --after demo/b = %q, next %q; want demo/c demo/d, next demo/d", got, next)
	}
	r := mustRun(t, cli("keys", "list", "--limit", "2", "--after", "demo/d"), "last page")
	if got, next = tableRows(t, r.stdout); !slices.Equal(got, []string{"demo/e"}) || next != "" || strings.Contains(r.stdout, "next:") {
		t.Errorf("keys list --limit 2 --after demo/d = %q, next %q; want demo/e and no next line:\n%s", got, next, r.stdout)
	}
	// --after without --limit follows every page from there.
	if got, next = tableRows(t, mustRun(t, cli("keys", "list", "--after", "demo/c"), "--after").stdout); !slices.Equal(got, []string{"demo/d", "demo/e"}) || next != "" {
		t.Errorf("keys list --after demo/c = %q, next %q; want demo/d demo/e", got, next)
	}

	// JSON: walk the pages by their "next" fields.
	var walked []string
	after, pages := "", 0
	for {
		args := []string{"-o", "json", "keys", "list", "--limit", "2"}
		if after != "" {
			args = append(args, "--after", after)
		}
		var kl apiv1.KeyList
		out := mustRun(t, cli(args...), "keys list -o json --limit 2").stdout
		if err := json.Unmarshal([]byte(out), &kl); err != nil {
			t.Fatalf("keys list -o json = %q: %v", out, err)
		}
		pages++
		for _, k := range kl.Keys {
			walked = append(walked, k.Name)
		}
		if kl.Next == "" {
			break
		}
		if pages > 5 {
			t.Fatalf("pages never end: next %q", kl.Next)
		}
		after = kl.Next
	}
	if !slices.Equal(walked, all) || pages != 3 {
		t.Errorf("walking -o json pages of 2 gave %q in %d pages, want %q in 3", walked, pages, all)
	}
	var full apiv1.KeyList
	if err := json.Unmarshal([]byte(mustRun(t, cli("-o", "json", "keys", "list"), "keys list -o json").stdout), &full); err != nil || len(full.Keys) != 5 || full.Next != "" {
		t.Errorf("keys list -o json = %d keys, next %q, %v; want 5 and no next", len(full.Keys), full.Next, err)
	}

	for _, bad := range []string{"0", "-1", strconv.Itoa(apiv1.MaxPageLimit + 1)} {
		if r := cli("keys", "list", "--limit", bad); r.code != exitUsage || !strings.Contains(r.stderr, "--limit must be from 1 to") || r.stdout != "" {
			t.Errorf("keys list --limit %s = exit %d, stdout %q, stderr %q; want a usage error", bad, r.code, r.stdout, r.stderr)
		}
	}
}

// TestGrantsListPages: the same for grants, whose cursor is opaque, on one
// key and on every key.
func TestGrantsListPages(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t)
	cli := nodeCLI(t, n)
	n.CreateKeys(t, "demo/a", "demo/b")
	n.Grant(t, "token:p1", []string{"decrypt"}, "demo/a", "demo/b")
	n.Grant(t, "token:p2", []string{"decrypt"}, "demo/a", "demo/b")
	n.Grant(t, "token:p3", []string{"encrypt"}, "demo/a")

	for _, key := range []string{"", "demo/a"} {
		base := []string{"grants", "list"}
		if key != "" {
			base = append(base, key)
		}
		all, next := tableRows(t, mustRun(t, cli(base...), "grants list").stdout)
		want := map[string]int{"": 5, "demo/a": 3}[key]
		if len(all) != want || next != "" {
			t.Fatalf("grants list %s = %q, next %q; want %d grants", key, all, next, want)
		}

		// Table pages of 2, resumed with the printed cursor.
		var walked []string
		after := ""
		for pages := 1; ; pages++ {
			args := append(slices.Clone(base), "--limit", "2")
			if after != "" {
				args = append(args, "--after", after)
			}
			got, next := tableRows(t, mustRun(t, cli(args...), strings.Join(args, " ")).stdout)
			if len(got) > 2 || len(got) == 0 {
				t.Fatalf("%q = %d grants, want 1 or 2", args, len(got))
			}
			walked = append(walked, got...)
			if next == "" {
				break
			}
			if pages > want {
				t.Fatalf("pages never end: next %q", next)
			}
			after = next
		}
		if !slices.Equal(walked, all) {
			t.Errorf("grants list %s: table pages gave %q, one listing %q", key, walked, all)
		}

		// JSON: one page carries its cursor, and the next page follows it.
		var p1, p2 apiv1.GrantList
		if err := json.Unmarshal([]byte(mustRun(t, cli(append([]string{"-o", "json"}, append(slices.Clone(base), "--limit", "2")...)...), "json page 1").stdout), &p1); err != nil {
			t.Fatal(err)
		}
		if len(p1.Grants) != 2 || p1.Next == "" {
			t.Fatalf("grants list %s -o json --limit 2 = %d grants, next %q", key, len(p1.Grants), p1.Next)
		}
		if err := json.Unmarshal([]byte(mustRun(t, cli(append([]string{"-o", "json"}, append(slices.Clone(base), "--limit", "2", "--after", p1.Next)...)...), "json page 2").stdout), &p2); err != nil {
			t.Fatal(err)
		}
		if len(p2.Grants) == 0 || p2.Grants[0].ID != all[2] || p1.Grants[0].ID != all[0] || p1.Grants[1].ID != all[1] {
			t.Errorf("grants list %s -o json pages = %+v then %+v; want them in the order %q", key, p1.Grants, p2.Grants, all)
		}
	}

	if r := cli("grants", "list", "--limit", "2", "--after", "not-a-cursor"); r.code != exitFailure || !strings.Contains(r.stderr, `"after" must be the "next" of a previous page`) {
		t.Errorf("grants list --after not-a-cursor = exit %d, stderr %q; want the daemon's bad_request", r.code, r.stderr)
	}
	if r := cli("grants", "list", "--limit", "0"); r.code != exitUsage || !strings.Contains(r.stderr, "--limit must be from 1 to") {
		t.Errorf("grants list --limit 0 = exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
}

// TestKeysListFollowsPages: without --limit the CLI asks for page after
// page until one has no next, and prints them all with no next line. (A
// real node's default page holds 1000 keys; this daemon's holds 2.)
func TestKeysListFollowsPages(t *testing.T) {
	t.Parallel()
	names := []string{"demo/1", "demo/2", "demo/3", "demo/4", "demo/5"}
	var (
		mu      sync.Mutex
		queries []string
	)
	asked := func() []string {
		mu.Lock()
		defer mu.Unlock()
		q := queries
		queries = nil
		return q
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		after := r.URL.Query().Get("after")
		i := 0
		if after != "" {
			i = slices.Index(names, after) + 1
		}
		out := apiv1.KeyList{Keys: []apiv1.Key{}}
		for _, n := range names[i:min(i+2, len(names))] {
			out.Keys = append(out.Keys, apiv1.Key{Name: n, State: "active"})
		}
		if i+2 < len(names) {
			out.Next = names[i+1]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	env := map[string]string{envAddr: srv.URL, envToken: "tok"}
	r := runCLI(t, env, "", "keys", "list")
	if r.code != 0 {
		t.Fatalf("keys list = exit %d, stderr %q", r.code, r.stderr)
	}
	got, next := tableRows(t, r.stdout)
	if !slices.Equal(got, names) || next != "" {
		t.Errorf("keys list = %q, next %q; want %q", got, next, names)
	}
	if want := []string{"", "after=demo%2F2", "after=demo%2F4"}; !slices.Equal(asked(), want) {
		t.Errorf("keys list asked other pages, want %q", want)
	}
	r = runCLI(t, env, "", "-o", "json", "keys", "list", "--after", "demo/2")
	var kl apiv1.KeyList
	if err := json.Unmarshal([]byte(r.stdout), &kl); err != nil || len(kl.Keys) != 3 || kl.Keys[0].Name != "demo/3" || kl.Next != "" {
		t.Errorf("keys list -o json --after demo/2 = %q (%v); want demo/3 to demo/5 and no next", r.stdout, err)
	}
	if want := []string{"after=demo%2F2", "after=demo%2F4"}; !slices.Equal(asked(), want) {
		t.Errorf("keys list --after demo/2 asked other pages, want %q", want)
	}
}
