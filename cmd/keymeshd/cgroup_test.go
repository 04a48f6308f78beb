package main

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestContainerLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  uint64
	}{
		{"no /proc/self/cgroup", fstest.MapFS{}, 0},
		{"v2, limit on the cgroup", fstest.MapFS{
			"proc/self/cgroup":                   file("0::/kube/pod1\n"),
			"sys/fs/cgroup/kube/pod1/memory.max": file("157286400\n"),
			"sys/fs/cgroup/kube/memory.max":      file("max\n"),
		}, 150 << 20},
		{"v2, the smaller limit of an ancestor", fstest.MapFS{
			"proc/self/cgroup":                   file("0::/kube/pod1\n"),
			"sys/fs/cgroup/kube/pod1/memory.max": file("max\n"),
			"sys/fs/cgroup/kube/memory.max":      file("104857600\n"),
		}, 100 << 20},
		{"v2, no limit anywhere", fstest.MapFS{
			"proc/self/cgroup":                    file("0::/user.slice\n"),
			"sys/fs/cgroup/user.slice/memory.max": file("max\n"),
		}, 0},
		{"v2 in a cgroup namespace: its root", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("268435456\n"),
		}, 256 << 20},
		{"v1 memory controller", fstest.MapFS{
			"proc/self/cgroup": file("9:name=systemd:/\n4:memory:/process_api/abc\n3:cpuset:/\n0::/\n"),
			"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": file("157286400\n"),
			"sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":     file("9223372036854771712\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                 file("9223372036854771712\n"),
		}, 150 << 20},
		{"v1 with other controllers on the line", fstest.MapFS{
			"proc/self/cgroup": file("5:cpu,memory:/a\n"),
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes": file("67108864"),
		}, 64 << 20},
		{"hybrid: v2 under unified/", fstest.MapFS{
			"proc/self/cgroup":                           file("0::/a\n"),
			"sys/fs/cgroup/unified/a/memory.max":         file("67108864\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("1073741824\n"),
		}, 64 << 20},
		{"v1 and v2 both: the smaller", fstest.MapFS{
			"proc/self/cgroup": file("4:memory:/a\n0::/b\n"),
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes": file("1073741824\n"),
			"sys/fs/cgroup/b/memory.max":                   file("536870912\n"),
		}, 512 << 20},
		{"unreadable values are no limit", fstest.MapFS{
			"proc/self/cgroup":           file("0::/a\n"),
			"sys/fs/cgroup/a/memory.max": file("lots\n"),
		}, 0},
		{"malformed lines are skipped", fstest.MapFS{
			"proc/self/cgroup":           file("garbage\n1:memory\n2:memory:relative\n0::/a\n"),
			"sys/fs/cgroup/a/memory.max": file("104857600\n"),
		}, 100 << 20},
		{"a path that climbs out stays under the mount", fstest.MapFS{
			"proc/self/cgroup":             file("0::/../../etc\n"),
			"sys/fs/cgroup/etc/memory.max": file("104857600\n"),
		}, 100 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerLimit(tc.files); got != tc.want {
				t.Errorf("containerLimit = %d MiB (%d), want %d MiB", got>>20, got, tc.want>>20)
			}
		})
	}
}

func TestHeapCeiling(t *testing.T) {
	for _, tc := range []struct{ limit, want uint64 }{
		{0, 0},
		{150 << 20, 100 << 20},
		{3 << 30, 2 << 30},
	} {
		if got := heapCeiling(tc.limit); got != tc.want {
			t.Errorf("heapCeiling(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// FuzzParseProcCgroup: any /proc/self/cgroup gives absolute paths or
// none, and containerLimit reads only under /proc and /sys/fs/cgroup.
func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("0::/kube/pod1\n"))
	f.Add([]byte("9:name=systemd:/\n4:memory:/process_api/abc\n3:cpuset:/\n0::/\n"))
	f.Add([]byte("5:cpu,memory:/a\n0::/../..\n"))
	f.Add([]byte("garbage\n1:memory\n2:memory:relative\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v2, v1 := parseProcCgroup(b)
		for _, p := range []string{v2, v1} {
			if p != "" && !strings.HasPrefix(p, "/") {
				t.Fatalf("path %q is not absolute", p)
			}
		}
		opened := recordFS{MapFS: fstest.MapFS{"proc/self/cgroup": {Data: b}}, t: t}
		containerLimit(opened)
	})
}

// recordFS fails the test if a name outside /proc/self/cgroup and
// /sys/fs/cgroup is opened.
type recordFS struct {
	fstest.MapFS
	t *testing.T
}

func (r recordFS) Open(name string) (fs.File, error) {
	if name != "proc/self/cgroup" && !strings.HasPrefix(name, "sys/fs/cgroup/") {
		r.t.Fatalf("opened %q", name)
	}
	return r.MapFS.Open(name)
}
