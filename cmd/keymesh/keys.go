package main

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
)

func newKeysCmd(a *app) *cobra.Command {
	return newGroupCmd("keys", "Create, inspect, rotate and destroy keys (admin)",
		newKeysCreateCmd(a),
		newKeysListCmd(a),
		newKeysShowCmd(a),
		newKeysRotateCmd(a),
		newKeysStateCmd(a),
		newKeysConfigCmd(a),
		newKeysDestroyCmd(a),
	)
}

func newKeysCreateCmd(a *app) *cobra.Command {
	var req apiv1.CreateKeyRequest
	var preActive bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a key named <namespace>/<name>",
		Long: `Create a key named <namespace>/<name>, owned by this node's org.

--deterministic allows deterministic-mode encryption under the key, for
equality lookups: equal plaintexts under equal contexts give equal envelopes,
which reveals that the values are equal. --exportable allows the key to be
exported. Both are fixed for the life of the key.`,
		Example: `  keymesh keys create demo/ssn
  keymesh keys create trade/price --pre-active`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			if preActive {
				req.State = "pre-active"
			}
			k, err := c.CreateKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.emit(k, func(w io.Writer) { keyTable(w, k) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&req.Deterministic, "deterministic", false, "allow deterministic encryption (reveals equal values)")
	f.BoolVar(&req.Exportable, "exportable", false, "allow the key to be exported")
	f.BoolVar(&preActive, "pre-active", false, "create the key pre-active: usable only once set active")
	return cmd
}

func newKeysListCmd(a *app) *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "list [--limit N] [--after NAME]",
		Short: "List keys",
		Long: `List keys in name order.

Without --limit, keymesh follows every page of the listing and prints every
key (after the key named --after, when given). With --limit N it prints one
page of at most N keys and, when more follow, the cursor of the next page:
a last line "next: --after NAME" in a table, the "next" field with -o json.`,
		Example: `  keymesh keys list
  keymesh keys list --limit 100
  keymesh keys list --limit 100 --after demo/ssn`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			onePage, err := page.check(cmd)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var out apiv1.KeyList
			if onePage {
				p, err := c.ListKeysPage(cmd.Context(), page.after, page.limit)
				if err != nil {
					return err
				}
				out = *p
			} else {
				out.Keys, err = follow(page.after, func(after string) ([]apiv1.Key, string, error) {
					p, err := c.ListKeysPage(cmd.Context(), after, 0)
					if err != nil {
						return nil, "", err
					}
					return p.Keys, p.Next, nil
				})
				if err != nil {
					return err
				}
			}
			if out.Keys == nil {
				out.Keys = []apiv1.Key{}
			}
			return a.emit(out, func(w io.Writer) {
				row(w, "NAME", "STATE", "OWNER", "LATEST", "MIN-DECRYPT", "OPTIONS", "CREATED", "KMIP-UID", "KMIP-NAMES")
				for _, k := range out.Keys {
					uid, names := "-", "-"
					if k.KMIP != nil {
						uid, names = cell(k.KMIP.UID), cell(strings.Join(k.KMIP.Names, ","))
					}
					row(w, cell(k.Name), cell(k.State), cell(k.Owner), num(k.LatestVersion), num(k.MinDecryptionVersion), keyOptions(&k), tm(k.Created), uid, names)
				}
				nextLine(w, out.Next)
			})
		},
	}
	page.add(cmd, "start after the key named `NAME` (the \"next\" of a previous page)")
	return cmd
}

func newKeysShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a key and its versions",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.GetKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(k, func(w io.Writer) { keyTable(w, k) })
		},
	}
}

func newKeysRotateCmd(a *app) *cobra.Command {
	var activateIn string
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Add a new version to a key",
		Long: `Add a new version to a key. The new version becomes active after a
propagation grace, so that every holder has it before anyone encrypts with it:
--activate-in sets the grace (a Go duration such as 30s or 5m); without it the
node's configured grace applies. Older versions still decrypt.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if activateIn != "" {
				if _, err := time.ParseDuration(activateIn); err != nil {
					return usagef("invalid --activate-in %q: want a duration such as 30s or 5m", activateIn)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.RotateKey(cmd.Context(), args[0], apiv1.RotateKeyRequest{ActivateIn: activateIn})
			if err != nil {
				return err
			}
			return a.emit(k, func(w io.Writer) { keyTable(w, k) })
		},
	}
	cmd.Flags().StringVar(&activateIn, "activate-in", "", "delay before the new version becomes active (default: the node's grace)")
	return cmd
}

func newKeysStateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "state NAME STATE",
		Short: "Move a key to state active, deactivated or compromised",
		Long: `Move a key through its lifecycle: active (encrypt and decrypt),
deactivated (decrypt only) or compromised. To crypto-shred a key, use
'keymesh keys destroy'.`,
		Example: `  keymesh keys state demo/ssn deactivated`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[1] == "destroyed" {
				return usagef("to destroy a key use 'keymesh keys destroy %s --confirm %s'", args[0], args[0])
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.SetKeyState(cmd.Context(), args[0], apiv1.SetKeyStateRequest{State: args[1]})
			if err != nil {
				return err
			}
			return a.emit(k, func(w io.Writer) { keyTable(w, k) })
		},
	}
}

func newKeysConfigCmd(a *app) *cobra.Command {
	var minDecrypt uint32
	cmd := &cobra.Command{
		Use:   "config NAME --min-decryption-version N",
		Short: "Set a key's minimum decryption version",
		Long: `Set a key's minimum decryption version: envelopes under older versions
are refused. The minimum can be lowered again while those versions exist.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("min-decryption-version") {
				return usagef("keys config: --min-decryption-version is required")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.SetKeyConfig(cmd.Context(), args[0], apiv1.KeyConfigRequest{MinDecryptionVersion: minDecrypt})
			if err != nil {
				return err
			}
			return a.emit(k, func(w io.Writer) { keyTable(w, k) })
		},
	}
	cmd.Flags().Uint32Var(&minDecrypt, "min-decryption-version", 0, "refuse envelopes under versions older than N")
	return cmd
}

func newKeysDestroyCmd(a *app) *cobra.Command {
	var confirm string
	cmd := &cobra.Command{
		Use:   "destroy NAME --confirm NAME",
		Short: "Crypto-shred a key: everything encrypted under it becomes unreadable",
		Long: `Destroy a key: every holder deletes every version of it, and whatever was
encrypted under it becomes unreadable for good. This cannot be undone.

keymesh does not prompt; repeat the key's name with --confirm.`,
		Example: `  keymesh keys destroy demo/ssn --confirm demo/ssn`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if confirm != name {
				what := "without --confirm"
				if cmd.Flags().Changed("confirm") {
					what = "--confirm " + strconv.Quote(confirm) + " does not match"
				}
				return usagef("refusing to destroy key %q (%s): destroying crypto-shreds every version and cannot be undone; repeat the name with --confirm %s",
					name, what, name)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.DestroyKey(cmd.Context(), name, apiv1.DestroyKeyRequest{Confirm: confirm})
			if err != nil {
				return err
			}
			return a.emit(k, func(w io.Writer) { keyTable(w, k) })
		},
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", "the key's full name, repeated")
	return cmd
}

func keyOptions(k *apiv1.Key) string {
	var opts []string
	if k.Deterministic {
		opts = append(opts, "deterministic")
	}
	if k.Exportable {
		opts = append(opts, "exportable")
	}
	if k.KMIP != nil {
		opts = append(opts, "kmip")
	}
	if len(opts) == 0 {
		return "-"
	}
	return strings.Join(opts, ",")
}

func shortKeys(ks []string) string {
	if len(ks) == 0 {
		return "none"
	}
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = shortKey(k)
	}
	return strings.Join(out, ",")
}

// keyTable prints one key, then its versions.
func keyTable(w io.Writer, k *apiv1.Key) {
	row(w, "Name:", cell(k.Name))
	row(w, "Owner:", cell(k.Owner))
	row(w, "State:", cell(k.State))
	row(w, "Deterministic:", yesNo(k.Deterministic))
	row(w, "Exportable:", yesNo(k.Exportable))
	if k.KMIP != nil {
		row(w, "KMIP unique id:", cell(k.KMIP.UID))
		row(w, "KMIP owner:", cell(k.KMIP.Owner))
		row(w, "KMIP names:", cell(strings.Join(k.KMIP.Names, ", ")))
	}
	row(w, "Created:", tm(k.Created))
	row(w, "Latest version:", num(k.LatestVersion))
	row(w, "Min decryption version:", num(k.MinDecryptionVersion))
	// On a mesh node: the nodes holding the key and, once it is destroyed,
	// those yet to acknowledge (short signing keys, as `nodes list` shows).
	if len(k.Holders) > 0 {
		row(w, "Holders:", shortKeys(k.Holders))
	}
	if len(k.PendingAcks) > 0 || (k.State == "destroyed" && len(k.Holders) > 0) {
		row(w, "Pending acks:", shortKeys(k.PendingAcks))
	}
	if k.EraseError != "" {
		row(w, "Erase error:", cell(k.EraseError))
	}
	if len(k.Versions) == 0 {
		return
	}
	row(w)
	row(w, "VERSION", "CREATED", "ACTIVATE-AT", "ENCRYPTIONS", "DESTROYED")
	for _, v := range k.Versions {
		row(w, num(v.Version), tm(v.Created), tm(v.ActivateAt), num(v.Encryptions), yesNo(v.Destroyed))
	}
}
