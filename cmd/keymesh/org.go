package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/keymesh/keymesh/network"
	"github.com/spf13/cobra"
)

// newOrgCmd is `keymesh org`: local commands for an organisation's admin.
func newOrgCmd(a *app) *cobra.Command {
	return newGroupCmd("org", "Organisation admin keys (local, no daemon)", newOrgKeygenCmd(a))
}

// newOrgKeygenCmd is `keymesh org keygen`: it makes an org admin key pair.
func newOrgKeygenCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Generate an org admin Ed25519 key pair (local, no daemon)",
		Long: `keygen generates an organisation admin's Ed25519 key pair. It writes the
private key to --out (mode 0600; it refuses to overwrite a file) as a PKCS #8
"PRIVATE KEY" PEM block, the form OpenSSL uses for Ed25519 keys, and prints the
public key as 64 lower-case hex digits: the form the genesis file and
'keymesh network genesis --org ORG=PUBKEY' take.

Keep the private key offline: it signs the org's node records.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			pub, priv, err := ed25519.GenerateKey(nil)
			if err != nil {
				return err
			}
			data, err := network.MarshalAdminKey(priv)
			clear(priv)
			if err != nil {
				return err
			}
			err = writeNewFile(out, data, 0o600)
			clear(data)
			if err != nil {
				return err
			}
			pubHex := hex.EncodeToString(pub)
			return a.emit(struct {
				PublicKey string `json:"public_key"`
				File      string `json:"file"`
			}{pubHex, out}, func(w io.Writer) {
				fmt.Fprintf(w, "wrote org admin private key to %s (keep it offline)\n", out)
				fmt.Fprintf(w, "public key: %s\n", pubHex)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the private key to (0600; must not exist)")
	return cmd
}

// writeNewFile writes data to a file that must not exist yet, with mode
// perm, and syncs it. On failure it removes what it created.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite it", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm) // the umask may have narrowed it; never widen beyond perm
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
