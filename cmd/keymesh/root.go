package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/client"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command failed: an API error, a network error, a broken audit chain
	exitUsage   = 2 // the command line is wrong
)

// Defaults and environment variables of the global flags.
const (
	defaultAddr = "127.0.0.1:8420"
	envAddr     = "KEYMESH_ADDR"
	envToken    = "KEYMESH_TOKEN"
	envCAFile   = "KEYMESH_CA_FILE"

	maxTokenFileBytes = 64 << 10
)

// run is the whole CLI: main passes the process's arguments, streams and
// environment, and tests call it in-process. It returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	if args == nil {
		args = []string{} // cobra would read os.Args
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if env == nil {
		env = func(string) string { return "" }
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "keymesh: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, client.ErrInvalidName) {
		return exitUsage
	}
	return exitFailure
}

// app holds what every command shares: the streams, the environment and the
// global flags. Commands that talk to a daemon get their client from
// app.client, so a command that works only on local files (such as
// `keymesh init`) needs no address or token.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            func(string) string

	root      *cobra.Command
	addr      string
	token     string
	tokenFile string
	output    string
	caFile    string
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "keymesh",
		Short: "Operate a keymesh node: keys, grants, tokens, audit",
		Long: `keymesh operates one keymeshd through its REST API: keys and their
lifecycle, grants and revocations, API tokens, the audit log, and encryption
and decryption of single values.

Address and token come from --addr/KEYMESH_ADDR and
--token-file/--token/KEYMESH_TOKEN; a flag beats its environment variable.
Use -o json for scripts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,

		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("invalid --output %q: want table or json", a.output)
			}
			return nil
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", defaultAddr, "daemon address, host:port or an http(s):// URL (env "+envAddr+")")
	pf.StringVar(&a.token, "token", "", "API token (env "+envToken+"); visible in the process list, prefer --token-file")
	pf.StringVar(&a.tokenFile, "token-file", "", "read the API token from this file")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.caFile, "ca-file", "", "PEM file of the CA that signed the daemon's certificate; implies https (env "+envCAFile+")")
	a.root = root

	root.AddCommand(
		newStatusCmd(a),
		newKeysCmd(a),
		newGrantCmd(a),
		newRevokeCmd(a),
		newGrantsCmd(a),
		newEncryptCmd(a),
		newDecryptCmd(a),
		newTokenCmd(a),
		newAuditCmd(a),
	)
	root.AddCommand(newNodeCmd(a), newNodesCmd(a))
	// Local commands work on this machine's files instead of calling the
	// REST API; they must not call a.client.
	root.AddCommand(newInitCmd(a), newOrgCmd(a), newNetworkCmd(a), newFabricCmd(a))
	return root
}

// client builds the API client from the global flags and the environment.
func (a *app) client() (*client.Client, error) {
	flags := a.root.PersistentFlags()
	addr := a.addr
	if !flags.Changed("addr") {
		if v := a.env(envAddr); v != "" {
			addr = v
		}
	}
	token, err := a.resolveToken()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithUserAgent("keymesh-cli")}
	caFile := a.caFile
	if !flags.Changed("ca-file") {
		caFile = a.env(envCAFile)
	}
	if caFile != "" {
		opts = append(opts, client.WithCAFile(caFile))
	}
	c, err := client.New(addr, token, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// resolveToken returns the token of --token, --token-file or KEYMESH_TOKEN,
// in that order. Its errors never quote the token.
func (a *app) resolveToken() (string, error) {
	flags := a.root.PersistentFlags()
	switch {
	case flags.Changed("token") && flags.Changed("token-file"):
		return "", usagef("give --token or --token-file, not both")
	case flags.Changed("token"):
		if a.token == "" {
			return "", usagef("--token is empty")
		}
		return a.token, nil
	case flags.Changed("token-file"):
		return readTokenFile(a.tokenFile)
	case a.env(envToken) != "":
		return strings.TrimSpace(a.env(envToken)), nil
	}
	return "", usagef("no API token: give --token-file FILE, or set %s", envToken)
}

// readTokenFile reads a token file, trimming surrounding whitespace (the
// trailing newline of `echo … > file`).
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading token file %q: %w", path, err)
	}
	if len(data) > maxTokenFileBytes {
		return "", fmt.Errorf("token file %q is over %d bytes; is it the right file?", path, maxTokenFileBytes)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("token file %q is empty", path)
	}
	return token, nil
}

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// groupRunE is the RunE of a command that only groups subcommands: without
// one, or with an unknown one, it is a usage error rather than a help page
// and exit 0.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usagef("missing command; see '%s --help'", cmd.CommandPath())
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", strings.Join(s, `" or "`))
	}
	return usageError{errors.New(msg)}
}

// cmdName is the command's path without the program name: "keys show".
func cmdName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,

		SuggestionsMinimumDistance: 2,
	}
	cmd.AddCommand(subs...)
	return cmd
}

// nArgs accepts between lo and hi positional arguments; a wrong count is
// a usage error that shows the command's usage line.
func nArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		want := fmt.Sprintf("%d", lo)
		if hi != lo {
			want = fmt.Sprintf("%d to %d", lo, hi)
		}
		return usagef("%s: want %s argument(s), got %d; usage: %s", cmdName(cmd), want, len(args), cmd.UseLine())
	}
}

func exactArgs(n int) cobra.PositionalArgs { return nArgs(n, n) }

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
