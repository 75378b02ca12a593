// The host-side driver of umlpy's OCI validation suite: for each case it
// generates a bundle with runtime-tools' generate package (a busybox
// rootfs with the in-container checker as /oci-check and the config as
// /config.json), validates it with runtime-tools' validate package, and
// takes each runtime through the runtime-spec's lifecycle (runtime.md:
// create, state, start, kill, delete), checking what the spec says.
// The runtimes are run one case after the other, interleaved, and the
// result is one TAP line per case and runtime:
//
//	ok 3 - process runc
//	not ok 4 - process umlpy-oci
//	#   create: exit status 1: ...
//
// Usage: driver -checker BIN -rootfs DIR -work DIR -runtime NAME=PATH... [-run REGEXP]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
	"github.com/opencontainers/runtime-tools/validate"
	"github.com/xeipuuv/gojsonschema"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Runtime is one OCI runtime's command line, with a --root of its own.
type Runtime struct {
	Name string
	Path string
	Root string
}

func (r *Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.Path, append([]string{"--root", r.Root}, args...)...)
}

// Run runs a runtime command to its end (60 s at most): its stdout,
// stderr and exit status (-1 when it could not be run or timed out).
func (r *Runtime) Run(args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := r.command(ctx, args...)
	var out, errout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errout
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
			code = ee.ExitCode()
		} else {
			errout.WriteString(err.Error())
		}
	}
	return out.String(), errout.String(), code
}

// T collects one case's checks against one runtime.
type T struct {
	failures []string
	checks   int
	skip     string
}

func (t *T) Ok(ok bool, name string, format string, args ...interface{}) bool {
	t.checks++
	if !ok {
		t.failures = append(t.failures, name+": "+fmt.Sprintf(format, args...))
	}
	return ok
}

func (t *T) Fail(name string, format string, args ...interface{}) {
	t.Ok(false, name, format, args...)
}

// Env is what the cases share: the flags, the host's facts.
type Env struct {
	Checker string
	Schema  string
	Rootfs  string
	Work    string
	HostNS  string
	Seq     int
}

var env Env

// Bundle is one case's bundle for one runtime.
type Bundle struct {
	Dir    string
	Rootfs string
	Case   *Case
	RT     *Runtime
	ID     string
	G      *generate.Generator
	Extra  map[string]string // what a case's config step leaves for its run step
	// top-level properties config.json has beside the Spec's
	Unknown map[string]interface{}
}

// Container is a container made from a bundle.
type Container struct {
	*Bundle
	ID       string
	PidFile  string
	Stdout   string
	Stderr   string
	Pid      int
	reaped   bool
	exitCode int
	rawState string // the last state's JSON
}

func (b *Bundle) Container(id string) *Container {
	return &Container{Bundle: b, ID: id, PidFile: filepath.Join(b.Dir, id+".pid"),
		Stdout: filepath.Join(b.Dir, id+".stdout"), Stderr: filepath.Join(b.Dir, id+".stderr")}
}

// Create runs `create`: the container's stdio is create's (files, as an
// engine gives it), and the pid file's process becomes our child when
// create's own process is gone (we are a subreaper).
func (c *Container) Create() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := c.RT.command(ctx, "create", "--bundle", c.Dir, "--pid-file", c.PidFile, c.ID)
	out, err := os.Create(c.Stdout)
	if err != nil {
		return err
	}
	defer out.Close()
	errf, err := os.Create(c.Stderr)
	if err != nil {
		return err
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = out, errf
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(c.Stderr)
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(msg)))
	}
	data, err := os.ReadFile(c.PidFile)
	if err != nil {
		return fmt.Errorf("create succeeded but the pid file: %v", err)
	}
	c.Pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || c.Pid <= 0 {
		return fmt.Errorf("create succeeded but the pid file holds %q", data)
	}
	return nil
}

func (c *Container) Do(args ...string) error {
	out, errout, code := c.RT.Run(args...)
	if code != 0 {
		return fmt.Errorf("%s: exit status %d: %s", args[0], code, strings.TrimSpace(errout+" "+out))
	}
	return nil
}

func (c *Container) Start() error             { return c.Do("start", c.ID) }
func (c *Container) Kill(signal string) error { return c.Do("kill", c.ID, signal) }
func (c *Container) Delete() error            { return c.Do("delete", c.ID) }

func (c *Container) State() (rspec.State, error) {
	var st rspec.State
	out, errout, code := c.RT.Run("state", c.ID)
	if code != 0 {
		return st, fmt.Errorf("state: exit status %d: %s", code, strings.TrimSpace(errout))
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("state: %v: %q", err, out)
	}
	c.rawState = out
	return st, nil
}

// WaitStatus polls state until it is want (timeout), returning the last.
func (c *Container) WaitStatus(want rspec.ContainerState, timeout time.Duration) (rspec.State, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.State()
		if (err == nil && st.Status == want) || time.Now().After(deadline) {
			return st, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Wait waits for the pid file's process, our child (subreaper): its
// exit status as a shell gives it (128+N for signal N), or an error.
func (c *Container) Wait(timeout time.Duration) (int, error) {
	if c.reaped {
		return c.exitCode, nil
	}
	done := make(chan syscall.WaitStatus, 1)
	errs := make(chan error, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(c.Pid, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				errs <- err
				return
			}
			done <- ws
			return
		}
	}()
	select {
	case ws := <-done:
		c.reaped = true
		if ws.Signaled() {
			c.exitCode = 128 + int(ws.Signal())
		} else {
			c.exitCode = ws.ExitStatus()
		}
		return c.exitCode, nil
	case err := <-errs:
		return -1, fmt.Errorf("wait4(%d): %v", c.Pid, err)
	case <-time.After(timeout):
		c.RT.Run("kill", c.ID, "KILL")
		syscall.Kill(c.Pid, syscall.SIGKILL)
		return -1, fmt.Errorf("the process had not ended after %v", timeout)
	}
}

func (c *Container) Output() string {
	data, _ := os.ReadFile(c.Stdout)
	return string(data)
}

// Cleanup removes the container whatever state it is in.
func (c *Container) Cleanup() {
	if _, _, code := c.RT.Run("state", c.ID); code != 0 {
		return
	}
	c.RT.Run("kill", c.ID, "KILL")
	c.RT.Run("delete", "--force", c.ID)
	if c.Pid > 0 && !c.reaped {
		c.Wait(10 * time.Second)
	}
}

// CheckState checks state's fields (runtime.md "State").
func CheckState(t *T, c *Container, st rspec.State, want rspec.ContainerState) {
	err := schemaCheck("state-schema.json", gojsonschema.NewStringLoader(c.rawState))
	t.Ok(err == nil, "state JSON schema", "%v", err)
	t.Ok(st.Version != "", "state.ociVersion", "empty")
	t.Ok(st.ID == c.ID, "state.id", "want %q, got %q", c.ID, st.ID)
	t.Ok(st.Status == want, "state.status", "want %q, got %q", want, st.Status)
	t.Ok(st.Bundle == c.Dir, "state.bundle", "want %q, got %q", c.Dir, st.Bundle)
	if want == rspec.StateCreated || want == rspec.StateRunning {
		t.Ok(st.Pid > 0 && syscall.Kill(st.Pid, 0) == nil, "state.pid", "want a live process, got %d", st.Pid)
	}
	wantAnn := c.G.Config.Annotations
	same := len(wantAnn) == len(st.Annotations)
	for k, v := range wantAnn {
		same = same && st.Annotations[k] == v
	}
	t.Ok(same, "state.annotations", "want %v, got %v", wantAnn, st.Annotations)
}

// CheckTAP reads the checker's TAP output: every "not ok" line is a
// failure, and the plan must be there (the checker ran to its end).
func CheckTAP(t *T, output string) {
	plan, oks := false, 0
	for _, line := range strings.Split(output, "\n") {
		switch {
		case strings.HasPrefix(line, "not ok "):
			_, check, _ := strings.Cut(line, " - ")
			t.Fail("checker", "%s", check)
		case strings.HasPrefix(line, "ok "):
			oks++
		case strings.HasPrefix(line, "1.."):
			plan = true
		case strings.HasPrefix(line, "Bail out!"):
			t.Fail("checker", "%s", line)
		}
	}
	t.checks += oks
	t.Ok(plan && oks > 0, "checker ran", "%d ok lines, plan %v; output %q", oks, plan, clip(output, 300))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Lifecycle is the default run of a case: create, state created, start,
// the process's outcome (exit status want, the checker's TAP), state
// stopped, delete, state of the deleted id an error.
func Lifecycle(t *T, b *Bundle, wantExit int) {
	c := b.Container(b.ID)
	defer c.Cleanup()
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
	code, err := c.Wait(30 * time.Second)
	t.Ok(err == nil && code == wantExit, "exit status", "want %d, got %d (%v); stderr %q",
		wantExit, code, err, clip(readFile(c.Stderr), 300))
	CheckTAP(t, c.Output())
	st, err = c.WaitStatus(rspec.StateStopped, 10*time.Second)
	if t.Ok(err == nil, "state after exit", "%v", err) {
		CheckState(t, c, st, rspec.StateStopped)
	}
	err = c.Delete()
	t.Ok(err == nil, "delete", "%v", err)
	_, err = c.State()
	t.Ok(err != nil, "state after delete is an error", "state answered")
}

func readFile(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}

func main() {
	var runtimes listFlag
	var only string
	var list bool
	flag.StringVar(&env.Checker, "checker", "", "the in-container checker (static)")
	flag.StringVar(&env.Rootfs, "rootfs", "", "a busybox rootfs to copy per bundle")
	flag.StringVar(&env.Schema, "schema", "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema",
		"the runtime-spec's JSON schema directory")
	flag.StringVar(&env.Work, "work", "", "a directory for bundles and state (others may search it)")
	flag.Var(&runtimes, "runtime", "NAME=PATH of a runtime (repeat)")
	flag.StringVar(&only, "run", "", "only the cases matching this regexp")
	flag.BoolVar(&list, "list", false, "list the cases")
	flag.Parse()
	if list {
		for _, c := range cases {
			fmt.Println(c.Name)
		}
		return
	}
	if env.Checker == "" || env.Rootfs == "" || env.Work == "" || len(runtimes) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	// the pid files' processes become our children once create is gone
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0); e != 0 {
		fmt.Fprintf(os.Stderr, "PR_SET_CHILD_SUBREAPER: %v\n", e)
		os.Exit(2)
	}
	env.HostNS = hostNamespaces()
	var rts []*Runtime
	for _, r := range runtimes {
		name, path, ok := strings.Cut(r, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "-runtime %q: expected NAME=PATH\n", r)
			os.Exit(2)
		}
		root := filepath.Join(env.Work, name+"-state")
		os.MkdirAll(root, 0o755)
		os.Chmod(root, 0o755)
		rts = append(rts, &Runtime{Name: name, Path: path, Root: root})
	}
	var re *regexp.Regexp
	if only != "" {
		re = regexp.MustCompile(only)
	}
	fmt.Println("TAP version 13")
	n := 0
	passed := map[string]int{}
	total, skipped := 0, 0
	for i := range cases {
		cs := &cases[i]
		if re != nil && !re.MatchString(cs.Name) {
			continue
		}
		skip := ""
		if cs.Skip != nil {
			skip = cs.Skip()
		}
		if skip != "" {
			skipped++
		} else {
			total++
		}
		for _, rt := range rts {
			n++
			if skip != "" {
				fmt.Printf("ok %d - %s %s # SKIP %s\n", n, cs.Name, rt.Name, skip)
				continue
			}
			start := time.Now()
			t := runCase(cs, rt)
			took := time.Since(start).Seconds()
			if len(t.failures) == 0 {
				passed[rt.Name]++
				fmt.Printf("ok %d - %s %s # %d checks, %.1fs\n", n, cs.Name, rt.Name, t.checks, took)
			} else {
				fmt.Printf("not ok %d - %s %s # %d of %d checks failed, %.1fs\n", n, cs.Name, rt.Name,
					len(t.failures), t.checks, took)
				for _, f := range t.failures {
					fmt.Printf("#   %s\n", strings.ReplaceAll(clip(f, 600), "\n", " "))
				}
			}
			reapStrays()
		}
	}
	fmt.Printf("1..%d\n", n)
	for _, rt := range rts {
		fmt.Printf("# %s: %d of %d cases passed (%d skipped)\n", rt.Name, passed[rt.Name], total, skipped)
	}
}

func runCase(cs *Case, rt *Runtime) (t *T) {
	t = &T{}
	defer func() {
		if r := recover(); r != nil {
			t.Fail("driver", "panic: %v", r)
		}
	}()
	env.Seq++
	b, err := newBundle(cs, rt)
	if b != nil && cs.After != nil {
		defer cs.After(b)
	}
	if err != nil {
		t.Fail("bundle", "%v", err)
		return t
	}
	if !cs.Invalid {
		err := validateBundle(b)
		if !t.Ok(err == nil, "bundle valid (runtime-tools validate)", "%v", err) {
			return t
		}
	}
	if cs.Run != nil {
		cs.Run(t, b)
	} else {
		Lifecycle(t, b, 0)
	}
	return t
}

// validateBundle: runtime-tools' validate checks (CheckAll's, but the
// JSON schema read from the runtime-spec's files here rather than from
// the network).
func validateBundle(b *Bundle) error {
	v, err := validate.NewValidator(b.G.Config, b.Dir, true, "linux")
	if err != nil {
		return err
	}
	var errs *multierror.Error
	for _, check := range []func() error{v.CheckPlatform, v.CheckRoot, v.CheckMandatoryFields,
		v.CheckSemVer, v.CheckMounts, v.CheckProcess, v.CheckLinux, v.CheckAnnotations, v.CheckHooks} {
		errs = multierror.Append(errs, check())
	}
	errs = multierror.Append(errs, schemaCheck("config-schema.json", gojsonschema.NewGoLoader(b.G.Config)))
	if err := errs.ErrorOrNil(); err != nil {
		return fmt.Errorf("%s", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " "))
	}
	return nil
}

func schemaCheck(schema string, doc gojsonschema.JSONLoader) error {
	loader := gojsonschema.NewReferenceLoader("file://" + filepath.Join(env.Schema, schema))
	result, err := gojsonschema.Validate(loader, doc)
	if err != nil {
		return fmt.Errorf("%s: %v", schema, err)
	}
	if !result.Valid() {
		var errs []string
		for _, e := range result.Errors() {
			errs = append(errs, e.String())
		}
		return fmt.Errorf("%s: %s", schema, strings.Join(errs, "; "))
	}
	return nil
}

func newBundle(cs *Case, rt *Runtime) (*Bundle, error) {
	dir := filepath.Join(env.Work, fmt.Sprintf("%s-%s", rt.Name, cs.Name))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	b := &Bundle{Dir: dir, Rootfs: filepath.Join(dir, "rootfs"), Case: cs, RT: rt,
		ID:    fmt.Sprintf("ociv-%s-%d-%d", strings.ReplaceAll(cs.Name, "_", "-"), os.Getpid(), env.Seq),
		Extra: map[string]string{}}
	// a copy of the rootfs, its files hard links (the checker only adds
	// probe files, which it removes)
	if out, err := exec.Command("cp", "-a", "-l", env.Rootfs, b.Rootfs).CombinedOutput(); err != nil {
		return b, fmt.Errorf("cp: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", env.Checker, filepath.Join(b.Rootfs, "oci-check")).CombinedOutput(); err != nil {
		return b, fmt.Errorf("cp: %v: %s", err, out)
	}
	os.Chmod(filepath.Join(b.Rootfs, "oci-check"), 0o755)
	g, err := baseGenerator(b)
	if err != nil {
		return b, err
	}
	b.G = g
	if cs.Config != nil {
		if err := cs.Config(b); err != nil {
			return b, err
		}
	}
	data, err := json.MarshalIndent(b.G.Config, "", "\t")
	if err != nil {
		return b, err
	}
	if b.Unknown != nil {
		var top map[string]interface{}
		json.Unmarshal(data, &top)
		for k, v := range b.Unknown {
			top[k] = v
		}
		if data, err = json.MarshalIndent(top, "", "\t"); err != nil {
			return b, err
		}
	}
	for _, p := range []string{filepath.Join(dir, "config.json"), filepath.Join(b.Rootfs, "config.json")} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return b, err
		}
	}
	if owner := b.Extra["chown"]; owner != "" {
		if out, err := exec.Command("chown", "-R", "-h", owner+":"+owner, b.Rootfs).CombinedOutput(); err != nil {
			return b, fmt.Errorf("chown: %v: %s", err, out)
		}
	}
	return b, nil
}

// baseGenerator: runtime-tools' default config (generate.New), the
// checker as its process, without process.capabilities (the default
// capability set is the "default" case's; every other case tests its
// own area), an annotation the state must show.
func baseGenerator(b *Bundle) (*generate.Generator, error) {
	g, err := generate.New("linux")
	if err != nil {
		return nil, err
	}
	g.SetRootPath("rootfs")
	g.SetHostname("oci-validation")
	g.SetProcessArgs([]string{"/oci-check"})
	g.AddProcessEnv("OCI_VALIDATION_HOST_NS", env.HostNS)
	g.AddAnnotation("org.umlpy.oci-validation.case", b.Case.Name)
	g.Config.Process.Capabilities = nil
	return &g, nil
}

func hostNamespaces() string {
	var parts []string
	for _, ns := range []string{"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"} {
		if l, err := os.Readlink("/proc/self/ns/" + ns); err == nil {
			parts = append(parts, ns+"="+l)
		}
	}
	return strings.Join(parts, ";")
}

// reapStrays reaps children left to us (we are a subreaper) by the
// runtimes' own double forks; no runtime command runs meanwhile.
func reapStrays() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
