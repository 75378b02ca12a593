package main

// The cases: each the same areas as a case of upstream runtime-tools'
// validation/ suite (named alike where it is one), written anew.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
	"github.com/syndtr/gocapability/capability"
)

// Case is one validation case, run against each runtime.
type Case struct {
	Name    string
	Config  func(b *Bundle) error // changes b.G (the base config) and b's files
	Run     func(t *T, b *Bundle) // default: Lifecycle, exit status 0
	After   func(b *Bundle)       // cleanup of what Config made
	Skip    func() string         // a reason to skip the case on this host
	Invalid bool                  // the config is invalid on purpose: not validated
}

func args(words ...string) func(b *Bundle) error {
	return func(b *Bundle) error { b.G.SetProcessArgs(words); return nil }
}

func exitStatus(code int) func(t *T, b *Bundle) {
	return func(t *T, b *Bundle) { Lifecycle(t, b, code) }
}

// FailsToRun: an invalid config, or a failing prestart hook: create (or
// else start) MUST generate an error, and the process never runs.
func FailsToRun(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	err := c.Create()
	if err == nil {
		if err = c.Start(); err == nil {
			c.Wait(10 * time.Second)
		}
	}
	t.Ok(err != nil, "create or start is an error", "both succeeded")
	t.Ok(!strings.Contains(c.Output(), "TAP version"), "the process did not run",
		"it ran: %q", clip(c.Output(), 200))
}

// Started: create and start, the process asked to be a long one.
func Started(t *T, c *Container) bool {
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return false
	}
	err := c.Start()
	return t.Ok(err == nil, "start", "%v", err)
}

// WaitOutput polls the container's stdout for text.
func WaitOutput(c *Container, text string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(c.Output(), text) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// KillAndDelete ends a started container: kill KILL, its exit (137),
// state stopped, delete.
func KillAndDelete(t *T, c *Container) {
	err := c.Kill("KILL")
	t.Ok(err == nil, "kill KILL", "%v", err)
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 128+9, "exit status after kill KILL", "want 137, got %d (%v)", code, err)
	st, err := c.WaitStatus(rspec.StateStopped, 10*time.Second)
	t.Ok(err == nil && st.Status == rspec.StateStopped, "state after kill",
		"want stopped, got %q (%v)", st.Status, err)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

func unknownID(b *Bundle) string { return b.ID + "-unknown" }

var cases = []Case{
	// runtime-tools' default config as it is (its default capability set)
	{Name: "default", Config: func(b *Bundle) error {
		g, err := generate.New("linux")
		if err != nil {
			return err
		}
		g.SetRootPath("rootfs")
		g.SetProcessArgs([]string{"/oci-check", "--mounts"})
		g.AddProcessEnv("OCI_VALIDATION_HOST_NS", env.HostNS)
		b.G = &g
		return nil
	}},
	// the base of every other case: the default without capabilities
	{Name: "base"},
	{Name: "hostname", Config: func(b *Bundle) error { b.G.SetHostname("hostname-specific"); return nil }},
	{Name: "process", Config: func(b *Bundle) error {
		b.G.SetProcessArgs([]string{"/oci-check", "--", "two words", `quote"d`, "$HOME", ""})
		b.G.AddProcessEnv("VALIDATION_VAR", "hello world")
		b.G.AddProcessEnv("VALIDATION_EMPTY", "")
		b.G.SetProcessCwd("/tmp")
		return nil
	}},
	{Name: "process_exit_status", Config: args("/oci-check", "--exit", "3"), Run: exitStatus(3)},
	{Name: "process_user", Config: func(b *Bundle) error {
		b.G.SetProcessUID(1000)
		b.G.SetProcessGID(1000)
		return nil
	}},
	{Name: "process_user_additional_gids", Config: func(b *Bundle) error {
		b.G.SetProcessUID(1000)
		b.G.SetProcessGID(1000)
		b.G.AddProcessAdditionalGid(5)
		b.G.AddProcessAdditionalGid(6)
		return nil
	}},
	// hard limits within the host's (root may lack CAP_SYS_RESOURCE, as
	// where this was written); NOFILE's soft limit is its hard one, since
	// a Go program (the checker) raises its soft limit to the hard at start
	{Name: "process_rlimits", Config: func(b *Bundle) error {
		b.G.AddProcessRlimits("RLIMIT_NOFILE", 2048, 2048)
		b.G.AddProcessRlimits("RLIMIT_CORE", 4096, 1024)
		b.G.AddProcessRlimits("RLIMIT_NPROC", 2000, 1000)
		b.G.AddProcessRlimits("RLIMIT_MSGQUEUE", 8192, 4096)
		return nil
	}},
	{Name: "process_rlimits_fail", Invalid: true, Run: FailsToRun, Config: func(b *Bundle) error {
		b.G.Config.Process.Rlimits = append(b.G.Config.Process.Rlimits,
			rspec.POSIXRlimit{Type: "RLIMIT_TEST", Hard: 1024, Soft: 1024})
		return nil
	}},
	{Name: "process_capabilities", Config: func(b *Bundle) error {
		caps := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID",
			"CAP_SETGID", "CAP_AUDIT_WRITE"}
		b.G.Config.Process.Capabilities = &rspec.LinuxCapabilities{Bounding: caps,
			Effective: caps, Permitted: caps, Inheritable: caps[:2], Ambient: caps[:2]}
		return nil
	}},
	// every capability of the host's bounding set (docker's --cap-add=all)
	{Name: "process_capabilities_host_all", Config: func(b *Bundle) error {
		caps := hostCapabilities()
		b.G.Config.Process.Capabilities = &rspec.LinuxCapabilities{Bounding: caps,
			Effective: caps, Permitted: caps}
		return nil
	}},
	// runc 1.1 ignores unknown capabilities (a warning), where the spec
	// has an error
	{Name: "process_capabilities_fail", Invalid: true, Run: FailsToRun, Config: func(b *Bundle) error {
		b.G.Config.Process.Capabilities = &rspec.LinuxCapabilities{Bounding: []string{"CAP_TEST"}}
		return nil
	}},
	{Name: "process_oom_score_adj", Config: func(b *Bundle) error { b.G.SetProcessOOMScoreAdj(500); return nil }},
	{Name: "process_no_new_privileges", Config: func(b *Bundle) error {
		b.G.SetProcessNoNewPrivileges(true)
		return nil
	}},
	{Name: "process_umask", Config: func(b *Bundle) error { b.G.SetProcessUmask(0o077); return nil }},
	{Name: "mounts", Config: configMounts},
	{Name: "root_readonly_true", Config: func(b *Bundle) error { b.G.SetRootReadonly(true); return nil }},
	{Name: "linux_masked_paths", Config: func(b *Bundle) error {
		if err := rootfsFiles(b, "masked-dir/secret", "masked-file"); err != nil {
			return err
		}
		for _, p := range []string{"/masked-dir", "/masked-file", "/proc/kcore", "/proc/keys",
			"/proc/timer_list", "/sys/firmware", "/nonexistent-path"} {
			b.G.AddLinuxMaskedPaths(p)
		}
		return nil
	}},
	{Name: "linux_readonly_paths", Config: func(b *Bundle) error {
		if err := rootfsFiles(b, "ro-dir/file", "ro-file"); err != nil {
			return err
		}
		for _, p := range []string{"/ro-dir", "/ro-file", "/proc/sys", "/proc/bus", "/nonexistent-path"} {
			b.G.AddLinuxReadonlyPaths(p)
		}
		return nil
	}},
	{Name: "linux_sysctl", Config: func(b *Bundle) error {
		b.G.AddLinuxSysctl("net.ipv4.ip_forward", "1")
		b.G.AddLinuxSysctl("kernel.shmmni", "2048")
		return nil
	}},
	{Name: "linux_ns_nopath", Config: func(b *Bundle) error {
		return b.G.AddOrReplaceLinuxNamespace("cgroup", "")
	}},
	// namespaces not listed are the runtime's own (upstream's linux_ns_itype)
	{Name: "linux_ns_inherit", Config: func(b *Bundle) error {
		b.G.ClearLinuxNamespaces()
		b.G.AddOrReplaceLinuxNamespace("pid", "")
		b.G.AddOrReplaceLinuxNamespace("mount", "")
		b.G.SetHostname("")
		b.G.SetProcessArgs([]string{"/oci-check", "--ns-inherit"})
		return nil
	}},
	{Name: "linux_ns_path", Config: configNsPath, After: killHolder},
	// joining a namespace by the path of another type's is an error
	{Name: "linux_ns_path_type", Run: FailsToRun, Config: func(b *Bundle) error {
		if err := configNsPath(b); err != nil {
			return err
		}
		return b.G.AddOrReplaceLinuxNamespace("uts", "/proc/"+b.Extra["holder"]+"/ns/net")
	}, After: killHolder},
	{Name: "linux_uid_mappings", Config: configUserNS},
	{Name: "linux_devices", Config: func(b *Bundle) error {
		mode := os.FileMode(0o640)
		var zero uint32
		b.G.AddDevice(rspec.LinuxDevice{Path: "/dev/oci-null", Type: "c", Major: 1, Minor: 3,
			FileMode: &mode, UID: &zero, GID: &zero})
		major, minor := int64(1), int64(3)
		b.G.AddLinuxResourcesDevice(true, "c", &major, &minor, "rwm")
		return nil
	}},
	{Name: "linux_seccomp", Config: func(b *Bundle) error {
		b.G.Config.Linux.Seccomp = &rspec.LinuxSeccomp{
			DefaultAction: rspec.ActAllow,
			Architectures: []rspec.Arch{rspec.ArchX86_64, rspec.ArchX86, rspec.ArchX32},
			Syscalls: []rspec.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"},
				Action: rspec.ActErrno}},
		}
		b.G.SetProcessArgs([]string{"/oci-check", "--seccomp-errno", "1"})
		return nil
	}},
	{Name: "linux_rootfs_propagation_private", Config: func(b *Bundle) error {
		return b.G.SetLinuxRootPropagation("private")
	}},
	{Name: "linux_cgroups_memory", Config: cgroupConfig(true, func(b *Bundle) {
		b.G.SetLinuxResourcesMemoryLimit(64 << 20)
	}), Run: cgroupRun(cgCheck{"memory", "memory.limit_in_bytes", "memory.max", strconv.Itoa(64 << 20)})},
	{Name: "linux_cgroups_relative_memory", Config: cgroupConfig(false, func(b *Bundle) {
		b.G.SetLinuxResourcesMemoryLimit(64 << 20)
	}), Run: cgroupRun(cgCheck{"memory", "memory.limit_in_bytes", "memory.max", strconv.Itoa(64 << 20)})},
	{Name: "linux_cgroups_pids", Config: cgroupConfig(true, func(b *Bundle) {
		b.G.SetLinuxResourcesPidsLimit(64)
	}), Run: cgroupRun(cgCheck{"pids", "pids.max", "pids.max", "64"})},
	{Name: "linux_cgroups_relative_pids", Config: cgroupConfig(false, func(b *Bundle) {
		b.G.SetLinuxResourcesPidsLimit(64)
	}), Run: cgroupRun(cgCheck{"pids", "pids.max", "pids.max", "64"})},
	{Name: "linux_cgroups_cpus", Config: cgroupConfig(true, func(b *Bundle) {
		b.G.SetLinuxResourcesCPUShares(512)
		b.G.SetLinuxResourcesCPUQuota(50000)
		b.G.SetLinuxResourcesCPUPeriod(100000)
		b.G.SetLinuxResourcesCPUCpus("0")
	}), Run: cgroupRun(
		// runc's conversion of shares to v2's cpu.weight: 1+((512-2)*9999)/262142
		cgCheck{"cpu", "cpu.shares", "cpu.weight", map[bool]string{false: "512", true: "20"}[cgroupV2()]},
		cgCheck{"cpu", "cpu.cfs_quota_us", "", "50000"},
		cgCheck{"cpu", "cpu.cfs_period_us", "", "100000"},
		cgCheck{"cpu", "", "cpu.max", "50000 100000"},
		cgCheck{"cpuset", "cpuset.cpus", "cpuset.cpus", "0"})},
	{Name: "linux_cgroups_blkio", Skip: blkioSkip, Config: cgroupConfig(true, func(b *Bundle) {
		major, minor := blkioDevice()
		b.G.AddLinuxResourcesBlockIOThrottleReadBpsDevice(major, minor, 1<<20)
	}), Run: func(t *T, b *Bundle) {
		major, minor := blkioDevice()
		dev := fmt.Sprintf("%d:%d", major, minor)
		want := "~" + dev + " 1048576"
		if cgroupV2() {
			want = "~" + dev + " rbps=1048576"
		}
		cgroupRun(cgCheck{"blkio", "blkio.throttle.read_bps_device", "io.max", want})(t, b)
	}},
	{Name: "linux_cgroups_devices", Skip: devicesSkip, Config: cgroupConfig(true, func(b *Bundle) {
		major, minor := int64(1), int64(3)
		b.G.AddLinuxResourcesDevice(true, "c", &major, &minor, "rwm")
	}), Run: cgroupRun(cgCheck{"devices", "devices.list", "", "~c 1:3 rwm"})},
	{Name: "linux_cgroups_hugetlb", Skip: controllerSkip("hugetlb"), Config: cgroupConfig(true, func(b *Bundle) {
		b.G.AddLinuxResourcesHugepageLimit("2MB", 4<<20)
	}), Run: cgroupRun(cgCheck{"hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max", strconv.Itoa(4 << 20)})},
	{Name: "linux_cgroups_network", Skip: controllerSkip("net_cls"), Config: cgroupConfig(true, func(b *Bundle) {
		b.G.SetLinuxResourcesNetworkClassID(0x100001)
	}), Run: cgroupRun(cgCheck{"net_cls", "net_cls.classid", "", "1048577"})},
	// delete removes what create made: the container's cgroups
	{Name: "delete_resources", Config: cgroupConfig(true, func(b *Bundle) {
		b.G.SetLinuxResourcesPidsLimit(64)
	}), Run: runDeleteResources},
	{Name: "hooks", Config: configHooks, Run: runHooks},
	// runc 1.1 runs poststart hooks at create (fixed in runc 1.2)
	{Name: "hooks_poststart", Config: configHooks, Run: runHooksPoststart},
	// a failing poststart or poststop hook is a warning: the lifecycle
	// goes on (config.md "Poststart", "Poststop"); runc 1.1 fails create
	// for a failing poststart hook
	{Name: "hooks_poststart_fail", Run: runHookFailIgnored, Config: func(b *Bundle) error {
		b.G.AddPostStartHook(rspec.Hook{Path: "/bin/false", Args: []string{"false"}})
		return nil
	}},
	{Name: "hooks_poststop_fail", Run: runHookFailIgnored, Config: func(b *Bundle) error {
		b.G.AddPostStopHook(rspec.Hook{Path: "/bin/false", Args: []string{"false"}})
		return nil
	}},
	{Name: "hooks_prestart_fail", Run: FailsToRun, Config: func(b *Bundle) error {
		b.G.AddPreStartHook(rspec.Hook{Path: "/bin/false", Args: []string{"false"}})
		return nil
	}},
	{Name: "state", Config: args("sleep", "30"), Run: runState},
	// runc's --pid-file: the pid of state (the container's process)
	{Name: "pidfile", Config: args("sleep", "30"), Run: runPidfile},
	{Name: "create", Config: args("sleep", "30"), Run: runCreate},
	{Name: "start", Config: args("sh", "-c", "echo started; exec sleep 30"), Run: runStart},
	{Name: "kill_created", Config: args("sh", "-c", "echo ran; sleep 30"), Run: runKillCreated},
	{Name: "kill_running_term", Config: args("sh", "-c",
		"trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"), Run: runKillTerm},
	{Name: "kill_running_kill", Config: args("sleep", "30"), Run: func(t *T, b *Bundle) {
		c := b.Container(b.ID)
		defer c.Cleanup()
		if Started(t, c) {
			KillAndDelete(t, c)
		}
	}},
	{Name: "kill_signals", Config: args("sh", "-c", "trap 'echo got-HUP' HUP; trap 'echo got-USR1' USR1; "+
		"trap 'echo got-USR2' USR2; trap 'exit 43' TERM; echo ready; while :; do sleep 0.1; done"),
		Run: runKillSignals},
	{Name: "kill_errors", Config: args("true"), Run: runKillErrors},
	{Name: "delete_running", Config: args("sleep", "30"), Run: runDeleteRunning},
	// runc deletes a created container (killing it first)
	{Name: "delete_created", Config: args("sleep", "30"), Run: runDeleteCreated},
	{Name: "delete_stopped", Config: args("true"), Run: runDeleteStopped},
	{Name: "config_updates_without_affect", Run: runConfigUpdates},
	// config.md "Extensibility": an unknown property MUST NOT be an error
	{Name: "misc_unknown_property", Config: func(b *Bundle) error {
		b.Unknown = map[string]interface{}{"org.umlpy.unknownProperty": "unknown"}
		return nil
	}},
	// "Valid values": an invalid value MUST be an error (an ociVersion
	// that is no SemVer)
	{Name: "misc_invalid_version", Invalid: true, Run: FailsToRun, Config: func(b *Bundle) error {
		b.G.SetVersion("invalid")
		return nil
	}},
}

func rootfsFiles(b *Bundle, files ...string) error {
	for _, f := range files {
		p := filepath.Join(b.Rootfs, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte("secret\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func configMounts(b *Bundle) error {
	src := filepath.Join(b.Dir, "bind-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "marker"), []byte("bind-ok"), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"mnt/bind-ro", "mnt/bind-rw", "mnt/tmpfs"} {
		if err := os.MkdirAll(filepath.Join(b.Rootfs, d), 0o755); err != nil {
			return err
		}
	}
	b.G.AddMount(rspec.Mount{Destination: "/mnt/bind-ro", Type: "bind", Source: src,
		Options: []string{"rbind", "ro"}})
	b.G.AddMount(rspec.Mount{Destination: "/mnt/bind-rw", Type: "bind", Source: src,
		Options: []string{"rbind", "rw"}})
	b.G.AddMount(rspec.Mount{Destination: "/mnt/tmpfs", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"nosuid", "nodev", "mode=755"}})
	b.G.SetProcessArgs([]string{"/oci-check", "--mounts", "--expect-file", "/mnt/bind-ro/marker=bind-ok",
		"--expect-file", "/mnt/bind-rw/marker=bind-ok"})
	return nil
}

// configNsPath: the uts, ipc and network namespaces of a holder process
// (unshare), joined by path.
func configNsPath(b *Bundle) error {
	holder := exec.Command("unshare", "--uts", "--ipc", "--net", "sleep", "60")
	if err := holder.Start(); err != nil {
		return fmt.Errorf("unshare: %v", err)
	}
	pid := holder.Process.Pid
	b.Extra["holder"] = strconv.Itoa(pid)
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if l != "" && l != hostNet {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unshare's namespaces never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var paths []string
	for kind, file := range map[string]string{"uts": "uts", "ipc": "ipc", "network": "net"} {
		p := fmt.Sprintf("/proc/%d/ns/%s", pid, file)
		l, err := os.Readlink(p)
		if err != nil {
			return err
		}
		paths = append(paths, file+"="+l)
		if err := b.G.AddOrReplaceLinuxNamespace(kind, p); err != nil {
			return err
		}
	}
	b.G.AddProcessEnv("OCI_VALIDATION_NS_PATHS", strings.Join(paths, ";"))
	b.G.SetHostname("")
	return nil
}

func killHolder(b *Bundle) {
	if pid, err := strconv.Atoi(b.Extra["holder"]); err == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
}

// configUserNS: a user namespace, ids 0-65535 as the host's 100000-;
// the rootfs a real copy owned by the container's root.
func configUserNS(b *Bundle) error {
	os.RemoveAll(b.Rootfs)
	if out, err := exec.Command("cp", "-a", env.Rootfs, b.Rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", env.Checker, filepath.Join(b.Rootfs, "oci-check")).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	os.Chmod(filepath.Join(b.Rootfs, "oci-check"), 0o755)
	b.G.AddOrReplaceLinuxNamespace("user", "")
	b.G.AddLinuxUIDMapping(100000, 0, 65536)
	b.G.AddLinuxGIDMapping(100000, 0, 65536)
	// config.json is written into the rootfs after this: own it then
	b.Extra["chown"] = "100000"
	return nil
}

func hostCapabilities() []string {
	var names []string
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v := strings.TrimPrefix(line, "CapBnd:"); v != line {
			mask, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			for _, c := range capability.List() {
				if mask&(1<<uint(c)) != 0 {
					names = append(names, "CAP_"+strings.ToUpper(c.String()))
				}
			}
		}
	}
	return names
}

// --- cgroups: read from the host, for the processes `ps` lists ---

func cgroupV2() bool {
	var st syscall.Statfs_t
	return syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == 0x63677270
}

func cgroupConfig(absolute bool, set func(b *Bundle)) func(b *Bundle) error {
	return func(b *Bundle) error {
		path := "ociv-" + b.ID
		if absolute {
			path = "/" + path
		}
		b.G.SetLinuxCgroupsPath(path)
		b.Extra["cgroupsPath"] = path
		set(b)
		b.G.SetProcessArgs([]string{"sleep", "30"})
		return nil
	}
}

// cgroupOf: a process's cgroup path for a controller (v1), or its one
// path (v2).
func cgroupOf(pid int, controller string) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if cgroupV2() && parts[0] == "0" && parts[1] == "" {
			return parts[2], nil
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2], nil
			}
		}
	}
	return "", fmt.Errorf("no %s cgroup in /proc/%d/cgroup", controller, pid)
}

func cgroupFile(pid int, controller, v1, v2 string) (string, string, error) {
	path, err := cgroupOf(pid, controller)
	if err != nil {
		return "", "", err
	}
	file := filepath.Join("/sys/fs/cgroup", controller, path, v1)
	if cgroupV2() {
		file = filepath.Join("/sys/fs/cgroup", path, v2)
	}
	data, err := os.ReadFile(file)
	return path, strings.TrimSpace(string(data)), err
}

func containerPids(c *Container) ([]int, error) {
	out, errout, code := c.RT.Run("ps", "--format", "json", c.ID)
	if code != 0 {
		return nil, fmt.Errorf("ps: exit status %d: %s", code, strings.TrimSpace(errout))
	}
	var pids []int
	if err := json.Unmarshal([]byte(out), &pids); err != nil || len(pids) == 0 {
		return nil, fmt.Errorf("ps --format json: %q (%v)", out, err)
	}
	return pids, nil
}

// cgCheck: a controller's file (v1's name, v2's; "" for none) and what
// it must hold ("~x": contains x).
type cgCheck struct{ controller, v1, v2, want string }

// cgroupRun: start the container (sleep), then for every process ps
// lists, each file holds what it must, and the process's cgroup is
// config's cgroupsPath.
func cgroupRun(checks ...cgCheck) func(t *T, b *Bundle) {
	return func(t *T, b *Bundle) {
		c := b.Container(b.ID)
		defer c.Cleanup()
		if !Started(t, c) {
			return
		}
		pids, err := containerPids(c)
		if t.Ok(err == nil, "ps", "%v", err) {
			for _, pid := range pids {
				for i, k := range checks {
					name := k.v1
					if cgroupV2() {
						name = k.v2
					}
					if name == "" {
						continue
					}
					path, got, err := cgroupFile(pid, k.controller, k.v1, k.v2)
					ok := err == nil && got == k.want
					if strings.HasPrefix(k.want, "~") {
						ok = err == nil && strings.Contains(got, k.want[1:])
					}
					t.Ok(ok, fmt.Sprintf("cgroup %s of pid %d", name, pid),
						"in %q: want %q, got %q (%v)", path, k.want, clip(got, 200), err)
					if i == 0 {
						t.Ok(strings.HasSuffix(path, b.Extra["cgroupsPath"]),
							fmt.Sprintf("cgroupsPath of pid %d (%s)", pid, k.controller),
							"want %q, the process is in %q", b.Extra["cgroupsPath"], path)
					}
				}
			}
		}
		KillAndDelete(t, c)
	}
}

// blkioDevice: the disk the work directory is on.
func blkioDevice() (int64, int64) {
	var st syscall.Stat_t
	syscall.Stat(env.Work, &st)
	return int64(major(st.Dev)), int64(minor(st.Dev))
}

func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff) | uint32((dev>>12)&^0xff) }

func blkioSkip() string {
	major, minor := blkioDevice()
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	if _, err := os.Stat(sys); err != nil {
		return fmt.Sprintf("the work directory's device %d:%d is no block device", major, minor)
	}
	if _, err := os.Stat(sys + "/partition"); err == nil {
		return fmt.Sprintf("the work directory's device %d:%d is a partition (throttling is per disk)", major, minor)
	}
	if !cgroupV2() {
		if _, err := os.Stat("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device"); err != nil {
			return "no blkio throttling in this host's cgroups"
		}
	}
	return ""
}

func controllerSkip(controller string) func() string {
	return func() string {
		if cgroupV2() {
			data, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
			if controller != "net_cls" && strings.Contains(string(data), controller) {
				return ""
			}
		} else if _, err := os.Stat("/sys/fs/cgroup/" + controller); err == nil {
			return ""
		}
		return "no " + controller + " cgroup controller on this host"
	}
}

// runDeleteResources: the cgroup directories of the container's
// processes are gone after delete (runtime.md "delete").
func runDeleteResources(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if !Started(t, c) {
		return
	}
	pids, err := containerPids(c)
	dirs := map[string]bool{}
	if t.Ok(err == nil, "ps", "%v", err) {
		for _, pid := range pids {
			path, err := cgroupOf(pid, "pids")
			if t.Ok(err == nil, "cgroup of pid "+strconv.Itoa(pid), "%v", err) && path != "/" {
				dir := filepath.Join("/sys/fs/cgroup/pids", path)
				if cgroupV2() {
					dir = filepath.Join("/sys/fs/cgroup", path)
				}
				dirs[dir] = true
			}
		}
	}
	t.Ok(len(dirs) > 0, "the container has a cgroup of its own", "its processes are in the root cgroup")
	KillAndDelete(t, c)
	for dir := range dirs {
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := os.Stat(dir)
			if os.IsNotExist(err) || time.Now().After(deadline) {
				t.Ok(os.IsNotExist(err), "delete removed "+dir, "it is still there")
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func devicesSkip() string {
	if cgroupV2() {
		return "cgroup v2's device rules are eBPF programs, not readable files"
	}
	return ""
}

// --- hooks: host commands writing the state they are given ---

func hookFile(b *Bundle, kind string) string { return filepath.Join(b.Dir, "hook-"+kind+".json") }

func configHooks(b *Bundle) error {
	hook := func(kind string) rspec.Hook {
		return rspec.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + hookFile(b, kind)}}
	}
	b.G.AddPreStartHook(hook("prestart"))
	b.G.AddPostStartHook(hook("poststart"))
	b.G.AddPostStopHook(hook("poststop"))
	b.G.Config.Hooks.CreateRuntime = append(b.G.Config.Hooks.CreateRuntime, hook("createRuntime"))
	b.G.SetProcessArgs([]string{"sh", "-c", "sleep 1"})
	return nil
}

func hookRan(t *T, b *Bundle, kind string, ran bool) {
	data, err := os.ReadFile(hookFile(b, kind))
	if !ran {
		t.Ok(err != nil, kind+" hook not yet run", "it ran: %q", data)
		return
	}
	var st rspec.State
	if t.Ok(err == nil, kind+" hook ran", "%v", err) {
		err = json.Unmarshal(data, &st)
		t.Ok(err == nil && st.ID == b.ID && st.Bundle == b.Dir, kind+" hook's stdin is the state",
			"%q (%v)", clip(string(data), 200), err)
		if kind != "poststop" {
			t.Ok(st.Pid > 0, kind+" hook's state has the pid", "%q", clip(string(data), 200))
		}
	}
}

func runHooks(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	hookRan(t, b, "createRuntime", true)
	hookRan(t, b, "prestart", true)
	if err := c.Start(); !t.Ok(err == nil, "start", "%v", err) {
		return
	}
	hookRan(t, b, "poststart", true)
	hookRan(t, b, "poststop", false)
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 0, "exit status", "want 0, got %d (%v)", code, err)
	c.WaitStatus(rspec.StateStopped, 10*time.Second)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
	hookRan(t, b, "poststop", true)
}

// runHooksPoststart: poststart hooks run at start, after the process
// started, before start returns (config.md "Poststart").
func runHooksPoststart(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	hookRan(t, b, "poststart", false)
	if err := c.Start(); !t.Ok(err == nil, "start", "%v", err) {
		return
	}
	hookRan(t, b, "poststart", true)
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 0, "exit status", "want 0, got %d (%v)", code, err)
	c.WaitStatus(rspec.StateStopped, 10*time.Second)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

// runHookFailIgnored: the checker's lifecycle, start and delete
// succeeding whatever the failing hook.
func runHookFailIgnored(t *T, b *Bundle) { Lifecycle(t, b, 0) }

// --- the lifecycle's operations (runtime.md) ---

func runState(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	_, errout, code := c.RT.Run("state", unknownID(b))
	t.Ok(code != 0, "state of an unknown id is an error", "exit status 0: %q", errout)
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	st, err := c.State()
	if t.Ok(err == nil, "state after create", "%v", err) {
		CheckState(t, c, st, rspec.StateCreated)
	}
	if err := c.Start(); !t.Ok(err == nil, "start", "%v", err) {
		return
	}
	st, err = c.State()
	if t.Ok(err == nil, "state after start", "%v", err) {
		CheckState(t, c, st, rspec.StateRunning)
	}
	KillAndDelete(t, c)
	_, err = c.State()
	t.Ok(err != nil, "state after delete is an error", "state answered")
}

func runPidfile(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	st, err := c.State()
	t.Ok(err == nil && st.Pid == c.Pid, "the pid file's pid is state's (created)",
		"pid file %d, state %d (%v)", c.Pid, st.Pid, err)
	if err := c.Start(); !t.Ok(err == nil, "start", "%v", err) {
		return
	}
	st, err = c.State()
	t.Ok(err == nil && st.Pid == c.Pid, "the pid file's pid is state's (running)",
		"pid file %d, state %d (%v)", c.Pid, st.Pid, err)
	KillAndDelete(t, c)
}

func runCreate(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	before, _ := c.State()
	again := b.Container(b.ID)
	again.PidFile, again.Stdout, again.Stderr = c.PidFile+"2", c.Stdout+"2", c.Stderr+"2"
	err := again.Create()
	t.Ok(err != nil, "create with an existing id is an error", "it succeeded")
	st, err := c.State()
	t.Ok(err == nil && st.Status == rspec.StateCreated && st.Pid == before.Pid && st.Bundle == before.Bundle,
		"create with an existing id has no effect", "state %+v (%v)", st, err)
	empty := b.Container("")
	empty.PidFile, empty.Stdout, empty.Stderr = c.PidFile+"3", c.Stdout+"3", c.Stderr+"3"
	err = empty.Create()
	t.Ok(err != nil, "create without an id is an error", "it succeeded")
	if err == nil {
		empty.Cleanup()
	}
	missing := b.Container(b.ID + "-nobundle")
	missing.Bundle = &Bundle{Dir: filepath.Join(b.Dir, "no-such-bundle"), RT: b.RT, G: b.G, Case: b.Case}
	missing.PidFile, missing.Stdout, missing.Stderr = c.PidFile+"4", c.Stdout+"4", c.Stderr+"4"
	err = missing.Create()
	t.Ok(err != nil, "create of a missing bundle is an error", "it succeeded")
	if err == nil {
		missing.Cleanup()
	}
	if err := c.Start(); t.Ok(err == nil, "start", "%v", err) {
		KillAndDelete(t, c)
	}
}

func runStart(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	_, errout, code := c.RT.Run("start", unknownID(b))
	t.Ok(code != 0, "start of an unknown id is an error", "exit status 0: %q", errout)
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	time.Sleep(300 * time.Millisecond)
	t.Ok(c.Output() == "", "nothing runs before start", "output %q", c.Output())
	if err := c.Start(); !t.Ok(err == nil, "start", "%v", err) {
		return
	}
	t.Ok(WaitOutput(c, "started", 10*time.Second), "the process runs after start", "output %q", c.Output())
	err := c.Start()
	t.Ok(err == nil == false, "start of a running container is an error", "it succeeded")
	st, err := c.State()
	t.Ok(err == nil && st.Status == rspec.StateRunning, "a second start has no effect",
		"state %q (%v)", st.Status, err)
	t.Ok(strings.Count(c.Output(), "started") == 1, "the process ran once", "output %q", c.Output())
	c.Kill("KILL")
	c.Wait(20 * time.Second)
	c.WaitStatus(rspec.StateStopped, 10*time.Second)
	err = c.Start()
	t.Ok(err != nil, "start of a stopped container is an error", "it succeeded")
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

func runKillCreated(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	err := c.Kill("KILL")
	t.Ok(err == nil, "kill KILL of a created container", "%v", err)
	_, err = c.Wait(20 * time.Second)
	t.Ok(err == nil, "its process ends", "%v", err)
	st, err := c.WaitStatus(rspec.StateStopped, 10*time.Second)
	t.Ok(err == nil && st.Status == rspec.StateStopped, "state after kill",
		"want stopped, got %q (%v)", st.Status, err)
	t.Ok(c.Output() == "", "the process never ran", "output %q", c.Output())
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

func runKillTerm(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if !Started(t, c) {
		return
	}
	if !t.Ok(WaitOutput(c, "ready", 10*time.Second), "the process runs", "output %q", c.Output()) {
		return
	}
	err := c.Kill("TERM")
	t.Ok(err == nil, "kill TERM", "%v", err)
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 42, "the process's handler ran (exit status 42)", "got %d (%v)", code, err)
	st, err := c.WaitStatus(rspec.StateStopped, 10*time.Second)
	t.Ok(err == nil && st.Status == rspec.StateStopped, "state after kill", "got %q (%v)", st.Status, err)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

// runKillSignals: a signal by its name, its name without SIG, its number.
func runKillSignals(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if !Started(t, c) {
		return
	}
	if !t.Ok(WaitOutput(c, "ready", 10*time.Second), "the process runs", "output %q", c.Output()) {
		return
	}
	for _, k := range [][2]string{{"SIGHUP", "got-HUP"}, {"USR1", "got-USR1"}, {"12", "got-USR2"}} {
		err := c.Kill(k[0])
		t.Ok(err == nil && WaitOutput(c, k[1], 10*time.Second), "kill "+k[0],
			"%v; output %q", err, c.Output())
	}
	err := c.Kill("TERM")
	t.Ok(err == nil, "kill TERM", "%v", err)
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 43, "the TERM handler ran (exit status 43)", "got %d (%v)", code, err)
	c.WaitStatus(rspec.StateStopped, 10*time.Second)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

func runKillErrors(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	_, errout, code := c.RT.Run("kill", unknownID(b), "KILL")
	t.Ok(code != 0, "kill of an unknown id is an error", "exit status 0: %q", errout)
	if !Started(t, c) {
		return
	}
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 0, "exit status", "got %d (%v)", code, err)
	st, err := c.WaitStatus(rspec.StateStopped, 10*time.Second)
	t.Ok(err == nil && st.Status == rspec.StateStopped, "state stopped", "got %q (%v)", st.Status, err)
	err = c.Kill("TERM")
	t.Ok(err != nil, "kill of a stopped container is an error", "it succeeded")
	st, err = c.State()
	t.Ok(err == nil && st.Status == rspec.StateStopped, "kill of a stopped container has no effect",
		"state %q (%v)", st.Status, err)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}

func runDeleteRunning(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if !Started(t, c) {
		return
	}
	before, _ := c.State()
	err := c.Delete()
	t.Ok(err != nil, "delete of a running container is an error", "it succeeded")
	st, err := c.State()
	t.Ok(err == nil && st.Status == rspec.StateRunning && st.Pid == before.Pid,
		"delete of a running container has no effect", "state %+v (%v)", st, err)
	KillAndDelete(t, c)
}

// runc deletes a created container (it kills it first): a known
// difference from runtime.md, which says it is an error.
func runDeleteCreated(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	err := c.Delete()
	t.Ok(err != nil, "delete of a created container is an error", "it succeeded")
	st, err := c.State()
	t.Ok(err == nil && st.Status == rspec.StateCreated, "delete of a created container has no effect",
		"state %q (%v)", st.Status, err)
}

func runDeleteStopped(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	_, errout, code := c.RT.Run("delete", unknownID(b))
	t.Ok(code != 0, "delete of an unknown id is an error", "exit status 0: %q", errout)
	if !Started(t, c) {
		return
	}
	code, err := c.Wait(20 * time.Second)
	t.Ok(err == nil && code == 0, "exit status", "got %d (%v)", code, err)
	c.WaitStatus(rspec.StateStopped, 10*time.Second)
	err = c.Delete()
	t.Ok(err == nil, "delete of a stopped container", "%v", err)
	_, err = c.State()
	t.Ok(err != nil, "state after delete is an error", "state answered")
	again := b.Container(b.ID)
	again.PidFile, again.Stdout, again.Stderr = c.PidFile+"2", c.Stdout+"2", c.Stderr+"2"
	err = again.Create()
	t.Ok(err == nil, "a deleted container's id can be used again", "%v", err)
	if err == nil {
		again.Cleanup()
	}
}

// The runtime reads config.json at create: a change after it has no effect.
func runConfigUpdates(t *T, b *Bundle) {
	c := b.Container(b.ID)
	defer c.Cleanup()
	if err := c.Create(); !t.Ok(err == nil, "create", "%v", err) {
		return
	}
	changed := *b.G.Config
	process := *changed.Process
	process.Args = []string{"sh", "-c", "echo changed; exit 7"}
	changed.Process = &process
	changed.Hostname = "changed"
	data, _ := json.Marshal(&changed)
	os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644)
	if err := c.Start(); !t.Ok(err == nil, "start", "%v", err) {
		return
	}
	code, err := c.Wait(30 * time.Second)
	t.Ok(err == nil && code == 0, "exit status (the config of create)", "got %d (%v)", code, err)
	CheckTAP(t, c.Output())
	c.WaitStatus(rspec.StateStopped, 10*time.Second)
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
}
