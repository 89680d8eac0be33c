// Command pulumi-language-python is the Python language host Skyfleet builds beside its
// source-built Pulumi CLI.
//
// The CLI distribution ships one, but its own Go module (sdk/python/cmd/...) has no
// version the module proxy here serves, and the last host inside sdk/v3 (v3.79.0) predates
// the requests naming the program: a v3.276 CLI sends `pulumi install` to it without the
// virtualenv (it would turn the program folder into one) and a policy pack without its
// folder (it would run the project's program instead). So this host answers the engine
// from the request's ProgramInfo, as the current protocol intends:
//
//   - Run starts `<virtualenv>/bin/python pulumi-language-python-exec ARGS PROGRAM`, the
//     exec shim beside this binary, with the stack config in PULUMI_CONFIG and
//     PULUMI_CONFIG_SECRET_KEYS; exit status 32 means the program already reported its
//     error (the engine then shows only that).
//   - RunPlugin runs a Python plugin (a policy pack) from its folder, in its own
//     virtualenv, streaming its output and exit code.
//   - InstallDependencies is `pulumi install`: create the virtualenv if missing, then
//     `pip install -r requirements.txt` in the project folder.
//
// The virtualenv is runtime.options.virtualenv (relative to the project folder); without
// one, python3 from PATH. Provider plugins are not predicted (GetRequiredPackages answers
// none): the engine loads one when a resource needs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

const userActionableExit = 32 // the exec shim's "error already shown"

var version = "v3.276.0-skyfleet"

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
	shim   string
}

func main() {
	flag.String("tracing", "", "ignored")
	flag.String("root", "", "ignored: the project folder comes with each request")
	flag.String("virtualenv", "", "ignored: runtime options come with each request")
	flag.Parse()
	engine := flag.Arg(0)

	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	shim := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(shim); err != nil {
		fail(fmt.Errorf("missing the exec shim beside the host: %w", err))
	}

	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan bool)
	go func() { <-ctx.Done(); close(stop) }()
	if engine != "" {
		// The host lives as long as the engine that started it answers.
		if err := rpcutil.Healthcheck(ctx, engine, 5*time.Minute, cancel); err != nil {
			fail(err)
		}
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, &host{engine: engine, shim: shim})
			return nil
		},
	})
	if err != nil {
		fail(err)
	}
	fmt.Printf("%d\n", handle.Port) // how the engine learns where to reach us
	if err := <-handle.Done; err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

// python is the interpreter for a program or plugin: its virtualenv's, else python3.
func python(info *pulumirpc.ProgramInfo) (string, string) {
	venv := ""
	if info != nil && info.GetOptions() != nil {
		if v, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok && v != "" {
			venv = v
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.GetRootDirectory(), venv)
			}
		}
	}
	if venv == "" {
		return "python3", ""
	}
	return filepath.Join(venv, "bin", "python"), venv
}

// activate puts the virtualenv first on PATH, as `source bin/activate` would.
func activate(env []string, venv string) []string {
	if venv == "" {
		return env
	}
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "PATH=") ||
			strings.HasPrefix(kv, "VIRTUAL_ENV=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "VIRTUAL_ENV="+venv,
		"PATH="+filepath.Join(venv, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	interpreter, venv := python(info)
	program := req.GetProgram()
	root := ""
	if info != nil {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
		root = info.GetRootDirectory()
	}
	args := []string{"-u", h.shim}
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engine)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprint(req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	add("root_directory", root)
	args = append(append(args, program), req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secrets, err := json.Marshal(append([]string{}, req.GetConfigSecretKeys()...))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, interpreter, args...)
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(activate(os.Environ(), venv),
		"PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exit) && exit.ExitCode() == userActionableExit:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exit):
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with code %d", exit.ExitCode())}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run %s: %v", interpreter, err)}, nil
	}
}

// streamWriter sends what a child writes as one kind of response message.
type streamWriter func([]byte) error

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest,
	server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	info := req.GetInfo()
	interpreter, venv := python(info)
	program := req.GetProgram()
	if info != nil {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	}
	cmd := exec.CommandContext(server.Context(), interpreter,
		append([]string{"-u", program}, req.GetArgs()...)...)
	cmd.Dir = req.GetPwd()
	cmd.Env = activate(req.GetEnv(), venv)
	cmd.Stdout = streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.RunPluginResponse{
			Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}})
	})
	cmd.Stderr = streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.RunPluginResponse{
			Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}})
	})
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return fmt.Errorf("could not run %s %s: %w", interpreter, program, err)
	}
	code := 0
	if exit != nil {
		code = exit.ExitCode()
	}
	return server.Send(&pulumirpc.RunPluginResponse{
		Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	out := streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	})
	errw := streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	})
	info := req.GetInfo()
	root := req.GetDirectory()
	if info != nil && info.GetRootDirectory() != "" {
		root = info.GetRootDirectory()
	}
	interpreter, venv := python(info)
	run := func(name string, args ...string) error {
		fmt.Fprintf(out, "$ %s %s\n", name, strings.Join(args, " "))
		cmd := exec.CommandContext(server.Context(), name, args...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = out, errw
		cmd.Env = activate(os.Environ(), venv)
		return cmd.Run()
	}
	if venv != "" {
		if _, err := os.Stat(interpreter); err != nil {
			if err := run("python3", "-m", "venv", venv); err != nil {
				return fmt.Errorf("creating the virtualenv %s: %w", venv, err)
			}
		}
	}
	requirements := filepath.Join(root, "requirements.txt")
	if _, err := os.Stat(requirements); err != nil {
		fmt.Fprintf(out, "no %s: nothing to install\n", requirements)
		return nil
	}
	if err := run(interpreter, "-m", "pip", "install", "-r", requirements); err != nil {
		return fmt.Errorf("pip install -r %s: %w", requirements, err)
	}
	return nil
}

func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	interpreter, _ := python(req.GetInfo())
	got, err := exec.CommandContext(ctx, interpreter, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", interpreter, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: interpreter,
		Version:    strings.TrimSpace(strings.TrimPrefix(string(got), "Python ")),
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	interpreter, _ := python(req.GetInfo())
	args := []string{"-m", "pip", "list", "--format=json"}
	if !req.GetTransitiveDependencies() {
		args = append(args, "--not-required")
	}
	got, err := exec.CommandContext(ctx, interpreter, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", interpreter, strings.Join(args, " "), err)
	}
	var listed []struct{ Name, Version string }
	if err := json.Unmarshal(got, &listed); err != nil {
		return nil, fmt.Errorf("pip list: %w", err)
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(listed))
	for _, d := range listed {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}
