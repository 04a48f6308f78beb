package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
)

// maxStdinBytes bounds what encrypt and decrypt read from standard input:
// nothing larger fits in one request body.
const maxStdinBytes = apiv1.MaxBodyBytes

func newEncryptCmd(a *app) *cobra.Command {
	var (
		pairs        []string
		mode         string
		txID, txTime string
		value        string
	)
	cmd := &cobra.Command{
		Use:   "encrypt KEY [--context k=v]... [--value V]",
		Short: "Encrypt a value under a key and print its envelope",
		Long: `Encrypt one value under KEY and print the envelope's text form and a
newline. The plaintext is --value, or else standard input read to its end, as
bytes: 'echo x' adds a newline that becomes part of the plaintext, so use
'printf %s x' or --value.

--context binds the envelope to k=v pairs (repeatable); decryption must give
the same pairs. --mode is random (the default), deterministic (keys created
--deterministic only; equal values give equal envelopes) or endorsement
(needs --tx-id and --tx-time; every endorsing peer's node gives the same
bytes for the same proposal).`,
		Example: `  keymesh encrypt demo/ssn --context channel=trades --context field=ssn --value 123-45-6789
  printf %s "$SECRET" | keymesh encrypt demo/ssn --context field=ssn`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctxMap, err := parseContext(pairs)
			if err != nil {
				return err
			}
			req := apiv1.EncryptRequest{Key: args[0], Context: ctxMap, Mode: mode, TxID: txID}
			if (txID == "") != (txTime == "") {
				return usagef("encrypt: --tx-id and --tx-time go together")
			}
			if req.TxTime, err = parseTimeFlag("--tx-time", txTime); err != nil {
				return err
			}
			if cmd.Flags().Changed("value") {
				req.Plaintext = []byte(value)
			} else if req.Plaintext, err = readStdin(a.stdin, "plaintext"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			resp, err := c.Encrypt(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(resp, nil)
			}
			if resp.Ciphertext == "" {
				return fmt.Errorf("encrypt: the response holds no ciphertext")
			}
			_, err = fmt.Fprintln(a.stdout, resp.Ciphertext)
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&pairs, "context", nil, "bind the envelope to k=v (repeatable)")
	f.StringVar(&mode, "mode", "", "random (default), deterministic or endorsement")
	f.StringVar(&txID, "tx-id", "", "transaction id (endorsement mode)")
	f.StringVar(&txTime, "tx-time", "", "transaction time, RFC 3339 (endorsement mode)")
	f.StringVar(&value, "value", "", "the plaintext (default: read standard input)")
	return cmd
}

func newDecryptCmd(a *app) *cobra.Command {
	var (
		pairs []string
		value string
	)
	cmd := &cobra.Command{
		Use:   "decrypt [--context k=v]... [--value ENVELOPE]",
		Short: "Decrypt an envelope and print the plaintext",
		Long: `Decrypt one envelope and write the plaintext bytes to standard output,
exactly, with nothing added. The envelope is --value, or else standard input
with surrounding whitespace trimmed. --context must repeat the pairs given at
encryption.`,
		Example: `  keymesh decrypt --context channel=trades --context field=ssn --value km1:…
  keymesh encrypt demo/ssn --value hi | keymesh decrypt`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctxMap, err := parseContext(pairs)
			if err != nil {
				return err
			}
			env := value
			if !cmd.Flags().Changed("value") {
				b, err := readStdin(a.stdin, "envelope")
				if err != nil {
					return err
				}
				env = string(b)
			}
			env = strings.TrimSpace(env)
			if env == "" {
				return usagef("decrypt: no envelope: give --value or pipe one to standard input")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			resp, err := c.Decrypt(cmd.Context(), apiv1.DecryptRequest{Ciphertext: env, Context: ctxMap})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(resp, nil)
			}
			_, err = a.stdout.Write(resp.Plaintext)
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&pairs, "context", nil, "the k=v pairs given at encryption (repeatable)")
	f.StringVar(&value, "value", "", "the envelope (default: read standard input)")
	return cmd
}

// parseContext turns k=v flag values into a context map: each splits at its
// first '=', the key must not be empty, and no key may repeat. The value may
// hold '=' and ','; it may be empty.
func parseContext(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, usagef("invalid --context %q: want k=v", p)
		}
		if k == "" {
			return nil, usagef("invalid --context %q: empty key", p)
		}
		if _, dup := m[k]; dup {
			return nil, usagef("invalid --context: key %q given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

// readStdin reads r to its end, refusing more than maxStdinBytes.
func readStdin(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStdinBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the %s from standard input: %w", what, err)
	}
	if len(b) > maxStdinBytes {
		return nil, fmt.Errorf("the %s on standard input is over %d bytes, the API's request limit", what, maxStdinBytes)
	}
	return b, nil
}
