// Command keymesh is the operator CLI of keymesh. It manages keys, grants,
// tokens and the audit log of one keymeshd, and encrypts and decrypts values,
// all through the daemon's /v1 REST API (package node/client); it holds no key
// material itself.
//
// Every command that talks to a daemon needs its address and a token:
//
//	--addr       or KEYMESH_ADDR     (default 127.0.0.1:8420; http unless https:// or --ca-file)
//	--token-file or --token or KEYMESH_TOKEN
//	--ca-file    or KEYMESH_CA_FILE  (trust this CA for https)
//
// A flag beats its environment variable. Prefer --token-file or KEYMESH_TOKEN
// to --token, which other users of the machine can see in the process list.
//
// Output is a table for people, or with -o json the indented JSON of the API's
// response (the types of package node/apiv1) for scripts. A failure prints one
// line "keymesh: <message>" on standard error and exits 1, or 2 for a usage
// error (unknown command or flag, missing or malformed argument).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
