// The in-container checker of umlpy's OCI validation suite: run as the
// container's process, it reads the bundle's config.json (copied to
// /config.json in the rootfs) and checks the environment it was started
// in against it, one TAP line per check.  Our own program (as upstream
// runtime-tools' runtimetest checks, over the runtime-spec's types).
//
// Flags (they are part of process.args, which are checked too):
//
//	--mounts              the config's mounts are there, of their type, with
//	                      their ro, nosuid, nodev and noexec options (the
//	                      "default" and "mounts" cases: the other cases
//	                      leave the mounts area to them)
//	--ns-inherit          namespaces the config does not list are the host's
//	--expect-file P=TEXT  the file P holds TEXT (a bind mount's source)
//	--seccomp-errno N     mkdirat fails with errno N (a seccomp rule)
//	--exit N              exit with status N after the checks
//	--                    the words after it are only checked as process.args
//
// Environment: OCI_VALIDATION_HOST_NS holds the host's namespaces, as
// "type=readlink(/proc/self/ns/type)" separated by ";";
// OCI_VALIDATION_NS_PATHS the same for the namespaces joined by path.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/syndtr/gocapability/capability"
)

var (
	count  int
	failed int
)

func check(ok bool, name string, format string, args ...interface{}) {
	count++
	if ok {
		fmt.Printf("ok %d - %s\n", count, name)
		return
	}
	failed++
	detail := fmt.Sprintf(format, args...)
	fmt.Printf("not ok %d - %s # %s\n", count, name, strings.ReplaceAll(detail, "\n", " "))
}

type options struct {
	mounts       bool
	nsInherit    bool
	expectFiles  [][2]string
	seccompErrno int
	exit         int
}

func parseArgs(args []string) options {
	var o options
	for i := 0; i < len(args); i++ {
		next := func() string {
			i++
			if i >= len(args) {
				fmt.Printf("Bail out! %s needs a value\n", args[i-1])
				os.Exit(2)
			}
			return args[i]
		}
		switch args[i] {
		case "--mounts":
			o.mounts = true
		case "--ns-inherit":
			o.nsInherit = true
		case "--expect-file":
			p, text, _ := strings.Cut(next(), "=")
			o.expectFiles = append(o.expectFiles, [2]string{p, text})
		case "--seccomp-errno":
			o.seccompErrno, _ = strconv.Atoi(next())
		case "--":
			return o // the rest: words for process.args' own check
		case "--exit":
			o.exit, _ = strconv.Atoi(next())
		default:
			fmt.Printf("Bail out! unknown argument %q\n", args[i])
			os.Exit(2)
		}
	}
	return o
}

func main() {
	fmt.Println("TAP version 13")
	data, err := os.ReadFile("/config.json")
	if err != nil {
		fmt.Printf("Bail out! %v\n", err)
		os.Exit(2)
	}
	var spec rspec.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		fmt.Printf("Bail out! /config.json: %v\n", err)
		os.Exit(2)
	}
	o := parseArgs(os.Args[1:])
	mounts := readMountinfo()
	if spec.Process != nil {
		checkProcess(spec.Process)
	}
	checkRoot(&spec)
	checkHostname(&spec)
	if o.mounts {
		checkMounts(spec.Mounts, mounts)
	}
	checkDefaultDevices()
	checkDefaultFilesystems(mounts)
	if spec.Linux != nil {
		checkNamespaces(spec.Linux.Namespaces, o.nsInherit)
		checkMasked(spec.Linux.MaskedPaths)
		checkReadonly(spec.Linux.ReadonlyPaths, mounts)
		checkSysctl(spec.Linux.Sysctl)
		checkDevices(spec.Linux.Devices)
		checkIDMap("uid_map", spec.Linux.UIDMappings)
		checkIDMap("gid_map", spec.Linux.GIDMappings)
		checkPropagation(spec.Linux.RootfsPropagation, mounts)
	}
	for _, f := range o.expectFiles {
		got, err := os.ReadFile(f[0])
		check(err == nil && string(got) == f[1], "file "+f[0], "want %q, got %q (%v)", f[1], got, err)
	}
	if o.seccompErrno != 0 {
		_, _, errno := syscall.Syscall(syscall.SYS_MKDIRAT, uintptr(0xffffff9c),
			uintptr(unsafe.Pointer(unsafePtr("/tmp/seccomp-probe"))), 0o755)
		check(int(errno) == o.seccompErrno, "seccomp mkdirat errno",
			"want errno %d, got %d (%v)", o.seccompErrno, int(errno), errno)
	}
	fmt.Printf("1..%d\n", count)
	os.Exit(o.exit)
}

func unsafePtr(s string) *byte {
	p, _ := syscall.BytePtrFromString(s)
	return p
}

func procStatus() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func checkProcess(p *rspec.Process) {
	check(len(os.Args) == len(p.Args) && strings.Join(os.Args, "\x00") == strings.Join(p.Args, "\x00"),
		"process.args", "want %q, got %q", p.Args, os.Args)
	env := map[string]bool{}
	for _, e := range os.Environ() {
		env[e] = true
	}
	for _, e := range p.Env {
		check(env[e], "process.env "+strings.SplitN(e, "=", 2)[0], "%q not in the environment", e)
	}
	cwd, err := os.Getwd()
	check(err == nil && cwd == p.Cwd, "process.cwd", "want %q, got %q (%v)", p.Cwd, cwd, err)
	check(uint32(os.Getuid()) == p.User.UID, "process.user.uid", "want %d, got %d", p.User.UID, os.Getuid())
	check(uint32(os.Getgid()) == p.User.GID, "process.user.gid", "want %d, got %d", p.User.GID, os.Getgid())
	if len(p.User.AdditionalGids) > 0 {
		groups, _ := os.Getgroups()
		have := map[uint32]bool{}
		for _, g := range groups {
			have[uint32(g)] = true
		}
		for _, g := range p.User.AdditionalGids {
			check(have[g], fmt.Sprintf("process.user.additionalGids %d", g), "groups are %v", groups)
		}
	}
	if p.User.Umask != nil {
		old := syscall.Umask(0)
		syscall.Umask(old)
		check(uint32(old) == *p.User.Umask, "process.user.umask", "want %04o, got %04o", *p.User.Umask, old)
	}
	for _, r := range p.Rlimits {
		n, ok := rlimitNumbers[r.Type]
		if !ok {
			check(false, "process.rlimits "+r.Type, "unknown type")
			continue
		}
		var got syscall.Rlimit
		err := syscall.Getrlimit(n, &got)
		check(err == nil && got.Cur == r.Soft && got.Max == r.Hard, "process.rlimits "+r.Type,
			"want soft %d hard %d, got soft %d hard %d (%v)", r.Soft, r.Hard, got.Cur, got.Max, err)
	}
	status := procStatus()
	if p.NoNewPrivileges {
		check(status["NoNewPrivs"] == "1", "process.noNewPrivileges", "NoNewPrivs: %q", status["NoNewPrivs"])
	}
	if p.OOMScoreAdj != nil {
		got, err := os.ReadFile("/proc/self/oom_score_adj")
		check(err == nil && strings.TrimSpace(string(got)) == strconv.Itoa(*p.OOMScoreAdj),
			"process.oomScoreAdj", "want %d, got %q (%v)", *p.OOMScoreAdj, got, err)
	}
	if p.Capabilities != nil {
		checkCapabilities(p.Capabilities, status, os.Getuid() == 0)
	}
}

var rlimitNumbers = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

func checkCapabilities(c *rspec.LinuxCapabilities, status map[string]string, root bool) {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		last, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	sets := []struct {
		name, field string
		want        []string
	}{
		{"bounding", "CapBnd", c.Bounding},
		{"inheritable", "CapInh", c.Inheritable},
		{"ambient", "CapAmb", c.Ambient},
	}
	// A process of a uid other than 0 keeps effective and permitted
	// capabilities across execve only through ambient ones.
	if root || len(c.Ambient) > 0 {
		sets = append(sets, struct {
			name, field string
			want        []string
		}{"effective", "CapEff", c.Effective}, struct {
			name, field string
			want        []string
		}{"permitted", "CapPrm", c.Permitted})
	}
	for _, s := range sets {
		mask, err := strconv.ParseUint(status[s.field], 16, 64)
		if err != nil {
			check(false, "process.capabilities."+s.name, "%s: %q", s.field, status[s.field])
			continue
		}
		want := map[string]bool{}
		for _, n := range s.want {
			want[strings.ToLower(strings.TrimPrefix(strings.ToUpper(n), "CAP_"))] = true
		}
		var extra, missing []string
		for _, cp := range capability.List() {
			if int(cp) > last {
				continue
			}
			has := mask&(1<<uint(cp)) != 0
			if has && !want[cp.String()] {
				extra = append(extra, cp.String())
			} else if !has && want[cp.String()] {
				missing = append(missing, cp.String())
			}
		}
		check(len(extra) == 0 && len(missing) == 0, "process.capabilities."+s.name,
			"%s %s: missing %v, extra %v", s.field, status[s.field], missing, extra)
	}
}

func checkRoot(spec *rspec.Spec) {
	if spec.Root == nil {
		return
	}
	probe := "/.oci-validation-probe"
	fd, err := syscall.Open(probe, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, 0o644)
	if err == nil {
		syscall.Close(fd)
		os.Remove(probe)
	}
	if spec.Root.Readonly {
		check(err == syscall.EROFS, "root.readonly", "creating %s: want EROFS, got %v", probe, err)
	} else if os.Getuid() == 0 {
		check(err == nil, "root writable", "creating %s: %v", probe, err)
	}
}

func checkHostname(spec *rspec.Spec) {
	if spec.Hostname == "" {
		return
	}
	got, err := os.Hostname()
	check(err == nil && got == spec.Hostname, "hostname", "want %q, got %q (%v)", spec.Hostname, got, err)
}

type mountEntry struct {
	point, fstype, options, super, optional string
}

func readMountinfo() []mountEntry {
	var out []mountEntry
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		left, right, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		l, r := strings.Fields(left), strings.Fields(right)
		if len(l) < 6 || len(r) < 3 {
			continue
		}
		out = append(out, mountEntry{point: unescape(l[4]), options: l[5],
			optional: strings.Join(l[6:], " "), fstype: r[0], super: r[2]})
	}
	return out
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// The mount at exactly path (the last, which is the one on top).
func mountAt(mounts []mountEntry, path string) *mountEntry {
	var found *mountEntry
	for i := range mounts {
		if mounts[i].point == path {
			found = &mounts[i]
		}
	}
	return found
}

// The mount that path is on: the longest mount point that is a prefix.
func mountOf(mounts []mountEntry, path string) *mountEntry {
	var found *mountEntry
	for i := range mounts {
		p := mounts[i].point
		if p == path || p == "/" || strings.HasPrefix(path, p+"/") {
			if found == nil || len(p) >= len(found.point) {
				found = &mounts[i]
			}
		}
	}
	return found
}

func hasOption(list, option string) bool {
	for _, o := range strings.Split(list, ",") {
		if o == option {
			return true
		}
	}
	return false
}

func checkMounts(specMounts []rspec.Mount, mounts []mountEntry) {
	for _, m := range specMounts {
		dest := filepath.Clean(m.Destination)
		e := mountAt(mounts, dest)
		if e == nil {
			check(false, "mount "+dest, "not in /proc/self/mountinfo")
			continue
		}
		bind := m.Type == "bind"
		for _, o := range m.Options {
			if o == "bind" || o == "rbind" {
				bind = true
			}
		}
		if !bind && m.Type != "" {
			check(e.fstype == m.Type, "mount "+dest+" type", "want %q, got %q", m.Type, e.fstype)
		}
		for _, o := range m.Options {
			switch o {
			case "ro", "nosuid", "nodev", "noexec":
				check(hasOption(e.options, o), "mount "+dest+" "+o, "options are %q", e.options)
			}
		}
	}
}

func checkDefaultDevices() {
	chars := []struct {
		path         string
		major, minor uint32
	}{{"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7}, {"/dev/random", 1, 8},
		{"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}}
	for _, d := range chars {
		var st syscall.Stat_t
		err := syscall.Stat(d.path, &st)
		ok := err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFCHR &&
			major(st.Rdev) == d.major && minor(st.Rdev) == d.minor
		check(ok, "default device "+d.path, "want char %d:%d, got mode %o rdev %d:%d (%v)",
			d.major, d.minor, st.Mode, major(st.Rdev), minor(st.Rdev), err)
	}
	_, err := os.Stat("/dev/ptmx")
	check(err == nil, "default device /dev/ptmx", "%v", err)
	links := [][2]string{{"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"},
		{"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"}}
	for _, l := range links {
		got, err := os.Readlink(l[0])
		check(err == nil && got == l[1], "default link "+l[0], "want -> %s, got %q (%v)", l[1], got, err)
	}
}

// config-linux.md "Default Filesystems": these MUST be there.
func checkDefaultFilesystems(mounts []mountEntry) {
	for _, fs := range [][2]string{{"/proc", "proc"}, {"/sys", "sysfs"}, {"/dev/pts", "devpts"},
		{"/dev/shm", "tmpfs"}} {
		e := mountAt(mounts, fs[0])
		got := "no mount"
		if e != nil {
			got = e.fstype
		}
		check(e != nil && e.fstype == fs[1], "default filesystem "+fs[0], "want %s, got %s", fs[1], got)
	}
}

func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff) | uint32((dev>>12)&^0xff) }

var nsFiles = map[rspec.LinuxNamespaceType]string{
	rspec.PIDNamespace: "pid", rspec.NetworkNamespace: "net", rspec.MountNamespace: "mnt",
	rspec.IPCNamespace: "ipc", rspec.UTSNamespace: "uts", rspec.UserNamespace: "user",
	rspec.CgroupNamespace: "cgroup",
}

func nsMap(env string) map[string]string {
	out := map[string]string{}
	for _, item := range strings.Split(os.Getenv(env), ";") {
		if k, v, ok := strings.Cut(item, "="); ok {
			out[k] = v
		}
	}
	return out
}

func checkNamespaces(namespaces []rspec.LinuxNamespace, inherit bool) {
	host, byPath := nsMap("OCI_VALIDATION_HOST_NS"), nsMap("OCI_VALIDATION_NS_PATHS")
	listed := map[string]bool{}
	for _, ns := range namespaces {
		file := nsFiles[ns.Type]
		if file == "" {
			continue
		}
		listed[file] = true
		mine, err := os.Readlink("/proc/self/ns/" + file)
		if ns.Path != "" {
			check(err == nil && mine == byPath[file], "namespace "+file+" joined by path",
				"want %q, got %q (%v)", byPath[file], mine, err)
		} else {
			check(err == nil && host[file] != "" && mine != host[file], "namespace "+file+" own",
				"host %q, container %q (%v)", host[file], mine, err)
		}
	}
	if !inherit {
		return
	}
	var kinds []string
	for _, f := range nsFiles {
		kinds = append(kinds, f)
	}
	sort.Strings(kinds)
	for _, file := range kinds {
		if listed[file] {
			continue
		}
		if _, err := os.Stat("/proc/self/ns/" + file); err != nil && host[file] == "" {
			continue
		}
		mine, err := os.Readlink("/proc/self/ns/" + file)
		check(err == nil && mine == host[file], "namespace "+file+" inherited",
			"host %q, container %q (%v)", host[file], mine, err)
	}
}

func checkMasked(paths []string) {
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			check(os.IsNotExist(err), "masked "+p, "%v", err)
			continue
		}
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			check(err != nil || len(entries) == 0, "masked "+p, "directory lists %d entries", len(entries))
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			check(true, "masked "+p, "")
			continue
		}
		buf := make([]byte, 16)
		n, _ := f.Read(buf)
		f.Close()
		check(n == 0, "masked "+p, "read %d bytes: %q", n, buf[:n])
	}
}

func checkReadonly(paths []string, mounts []mountEntry) {
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			check(os.IsNotExist(err), "readonly "+p, "%v", err)
			continue
		}
		var werr error
		if fi.IsDir() {
			_, rerr := os.ReadDir(p)
			check(rerr == nil, "readonly "+p+" readable", "%v", rerr)
			probe := filepath.Join(p, ".oci-validation-probe")
			fd, err := syscall.Open(probe, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, 0o644)
			if err == nil {
				syscall.Close(fd)
				os.Remove(probe)
			}
			werr = err
		} else {
			fd, err := syscall.Open(p, syscall.O_WRONLY, 0)
			if err == nil {
				syscall.Close(fd)
			}
			werr = err
		}
		e := mountOf(mounts, p)
		ro := werr == syscall.EROFS || (werr != nil && e != nil && hasOption(e.options, "ro"))
		where := "no mount"
		if e != nil {
			where = e.point + " " + e.options
		}
		check(ro, "readonly "+p, "writing: %v; mount %s", werr, where)
	}
}

func checkSysctl(sysctl map[string]string) {
	var keys []string
	for k := range sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		check(err == nil && strings.TrimSpace(string(got)) == sysctl[k], "sysctl "+k,
			"want %q, got %q (%v)", sysctl[k], strings.TrimSpace(string(got)), err)
	}
}

func checkDevices(devices []rspec.LinuxDevice) {
	for _, d := range devices {
		var st syscall.Stat_t
		err := syscall.Stat(d.Path, &st)
		if err != nil {
			check(false, "device "+d.Path, "%v", err)
			continue
		}
		kinds := map[string]uint32{"c": syscall.S_IFCHR, "u": syscall.S_IFCHR, "b": syscall.S_IFBLK, "p": syscall.S_IFIFO}
		ok := st.Mode&syscall.S_IFMT == kinds[d.Type]
		if d.Type != "p" {
			ok = ok && int64(major(st.Rdev)) == d.Major && int64(minor(st.Rdev)) == d.Minor
		}
		if d.FileMode != nil {
			ok = ok && os.FileMode(st.Mode&0o777) == *d.FileMode&0o777
		}
		if d.UID != nil {
			ok = ok && st.Uid == *d.UID
		}
		if d.GID != nil {
			ok = ok && st.Gid == *d.GID
		}
		check(ok, "device "+d.Path, "want %s %d:%d, got mode %o rdev %d:%d uid %d gid %d",
			d.Type, d.Major, d.Minor, st.Mode, major(st.Rdev), minor(st.Rdev), st.Uid, st.Gid)
	}
}

func checkIDMap(file string, mappings []rspec.LinuxIDMapping) {
	if len(mappings) == 0 {
		return
	}
	data, err := os.ReadFile("/proc/self/" + file)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		got = append(got, strings.Join(strings.Fields(line), " "))
	}
	var want []string
	for _, m := range mappings {
		want = append(want, fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size))
	}
	sort.Strings(got)
	sort.Strings(want)
	check(err == nil && strings.Join(got, ";") == strings.Join(want, ";"), "linux "+file,
		"want %q, got %q (%v)", want, got, err)
}

func checkPropagation(propagation string, mounts []mountEntry) {
	if propagation == "" {
		return
	}
	e := mountAt(mounts, "/")
	if e == nil {
		check(false, "rootfsPropagation "+propagation, "no / in mountinfo")
		return
	}
	shared := strings.Contains(e.optional, "shared:")
	slave := strings.Contains(e.optional, "master:")
	var ok bool
	switch strings.TrimPrefix(propagation, "r") {
	case "shared":
		ok = shared
	case "slave":
		ok = slave && !shared
	case "private":
		ok = !shared && !slave
	case "unbindable":
		ok = strings.Contains(e.optional, "unbindable")
	}
	check(ok, "rootfsPropagation "+propagation, "root mount's tags %q", e.optional)
}
