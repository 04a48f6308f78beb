package ethereum_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"github.com/keymesh/keymesh/chaincode/ethereum"
	"github.com/keymesh/keymesh/chaincode/ethereum/example"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/node/nodetest"
	"github.com/keymesh/keymesh/vault/envelope"
)

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// world is a real keymesh node and a simulated chain, provisioned by the
// example: a reader wallet with decrypt grants, a stranger without.
type world struct {
	admin, app, wallet *client.Client
	chain              example.Chain
	reader, stranger   *ecdsa.PrivateKey
	networkID          string
}

func newWorld(t *testing.T, ctx context.Context) *world {
	t.Helper()
	nd := nodetest.Start(t)
	w := &world{admin: nd.Admin, wallet: nd.NewClient(""), reader: mustKey(t), stranger: mustKey(t)}
	appTok, err := example.Provision(ctx, w.admin, "dapp", example.Address(w.reader))
	if err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	w.app = nd.NewClient(appTok)
	st, err := w.admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.networkID = st.NetworkID

	deployer := mustKey(t)
	sim := simulated.NewBackend(types.GenesisAlloc{example.Address(deployer): {Balance: new(big.Int).Lsh(big.NewInt(1), 80)}})
	t.Cleanup(func() { _ = sim.Close() })
	chainID, err := sim.Client().ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.chain = example.Chain{Backend: sim.Client(), Commit: func() { sim.Commit() }, ChainID: chainID, Sender: bind.NewKeyedTransactor(deployer, chainID)}
	return w
}

func (w *world) decrypter(t *testing.T, key *ecdsa.PrivateKey) *ethereum.WalletDecrypter {
	t.Helper()
	d, err := ethereum.NewWalletDecrypter(w.wallet, key, w.chain.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (w *world) deploy(t *testing.T, ctx context.Context) *ethereum.Contract {
	t.Helper()
	addr, err := example.Deploy(ctx, w.chain)
	if err != nil {
		t.Fatal(err)
	}
	mw, err := example.Middleware(w.app, w.chain, addr)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

// rawOrder returns the envelopes of the OrderPlaced event in r, as stored.
func rawOrder(t *testing.T, r *types.Receipt) *example.OrderBookOrderPlaced {
	t.Helper()
	for _, l := range r.Logs {
		if ev, err := example.NewOrderBook().UnpackOrderPlacedEvent(l); err == nil {
			return ev
		}
	}
	t.Fatal("no OrderPlaced event")
	return nil
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !client.IsCode(err, code) {
		t.Errorf("%s error = %v, want code %q", what, err, code)
	}
}

// TestExampleRun runs the example's story (what scripts/eth-demo.sh runs
// against geth) on the simulated backend.
func TestExampleRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := newWorld(t, ctx)
	var out bytes.Buffer
	if err := example.Run(ctx, w.chain, w.app, w.wallet, w.reader, w.stranger, &out); err != nil {
		t.Fatalf("example.Run() error = %v\n%s", err, out.String())
	}
	t.Logf("example output:\n%s", out.String())
}

// TestSimulatedChain deploys the example contract on go-ethereum's simulated
// backend, sends encrypted fields through the middleware, and reads them
// back through a real keymesh node with wallet-signed requests.
func TestSimulatedChain(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := newWorld(t, ctx)
	mw := w.deploy(t, ctx)
	const price, cp = "99.5 EUR", "Globex Corp"
	receipt, err := example.Place(ctx, w.chain, mw, 2, price, cp)
	if err != nil {
		t.Fatalf("Place() error = %v", err)
	}
	raw := rawOrder(t, receipt)
	if bytes.Contains(raw.Price, []byte(price)) || bytes.Contains([]byte(raw.Counterparty), []byte(cp)) {
		t.Fatal("the plaintext is on-chain")
	}
	rd := w.decrypter(t, w.reader)
	items := []apiv1.DecryptItem{{Ciphertext: raw.Counterparty, Context: mw.Context("counterparty")}}

	t.Run("ok/eip712", func(t *testing.T) {
		o, err := example.ReadOrder(ctx, mw, rd, receipt)
		if err != nil || o.Price != price || o.Counterparty != cp || o.ID.Int64() != 2 {
			t.Fatalf("ReadOrder() = %+v, %v; want %q, %q", o, err, price, cp)
		}
	})
	t.Run("ok/eip191", func(t *testing.T) {
		o, err := example.ReadOrder(ctx, mw, rd.WithScheme(ethid.SchemeEIP191), receipt)
		if err != nil || o.Price != price {
			t.Fatalf("ReadOrder(eip191) = %+v, %v", o, err)
		}
	})
	t.Run("ok/return-values", func(t *testing.T) {
		ob := example.NewOrderBook()
		data, err := ob.Instance(w.chain.Backend, mw.Address()).CallRaw(&bind.CallOpts{Context: ctx}, ob.PackEntry(big.NewInt(2)))
		if err != nil {
			t.Fatal(err)
		}
		vals, err := mw.Unpack(ctx, rd, "entry", data)
		if err != nil || string(vals[1].([]byte)) != price || vals[2].(string) != cp {
			t.Fatalf("Unpack(entry) = %v, %v", vals, err)
		}
	})
	t.Run("fail/ungranted-wallet", func(t *testing.T) {
		_, err := example.ReadOrder(ctx, mw, w.decrypter(t, w.stranger), receipt)
		if !errors.Is(err, client.ErrNotGranted) {
			t.Errorf("ReadOrder(stranger) error = %v, want not_granted", err)
		}
	})
	t.Run("fail/grant-of-another-custodian", func(t *testing.T) {
		// A grant whose custodian is another org is for that org's nodes.
		k := mustKey(t)
		for _, key := range []string{example.PriceKey, example.CounterpartyKey} {
			if _, err := w.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: key, Party: ethid.Party(example.Address(k)), Ops: []string{"decrypt"}, Custodian: "Org9MSP"}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := example.ReadOrder(ctx, mw, w.decrypter(t, k), receipt)
		if !errors.Is(err, client.ErrNotGranted) {
			t.Errorf("ReadOrder(custodian Org9MSP) error = %v, want not_granted", err)
		}
	})
	t.Run("fail/moved-to-another-contract", func(t *testing.T) {
		other := w.deploy(t, ctx)
		// The same envelopes, copied as they are into another contract.
		r2, err := example.Transact(ctx, w.chain, other.Address(), example.NewOrderBook().PackPlace(big.NewInt(2), raw.Price, raw.Counterparty))
		if err != nil {
			t.Fatal(err)
		}
		_, err = example.ReadOrder(ctx, other, rd, r2)
		wantCode(t, "ReadOrder(copied to another contract)", err, apiv1.CodeDecryptionFailed)
		_, err = example.ReadOrder(ctx, mw, rd, r2)
		if !errors.Is(err, ethereum.ErrWrongContract) {
			t.Errorf("ReadOrder(log of another contract) error = %v, want ErrWrongContract", err)
		}
	})
	t.Run("fail/moved-to-another-field", func(t *testing.T) {
		// Swap them: the counterparty's envelope as the price and back.
		cpEnv, err := envelope.ParseText(raw.Counterparty)
		if err != nil {
			t.Fatal(err)
		}
		priceEnv, err := envelope.Parse(raw.Price)
		if err != nil {
			t.Fatal(err)
		}
		r3, err := example.Transact(ctx, w.chain, mw.Address(), example.NewOrderBook().PackPlace(big.NewInt(3), cpEnv.Marshal(), priceEnv.Text()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = example.ReadOrder(ctx, mw, rd, r3)
		wantCode(t, "ReadOrder(fields swapped)", err, apiv1.CodeDecryptionFailed)
	})
	t.Run("ok/ethers-style-context", func(t *testing.T) {
		// What ethers hands out: a 0x hex chain id, a checksummed address.
		// The decrypters canonicalise it, so it opens what the middleware
		// sealed (before, it failed with decryption_failed, always).
		ethersCtx := map[string]string{"chain_id": "0x" + w.chain.ChainID.Text(16), "contract": mw.Address().Hex(), "field": "counterparty"}
		if ethersCtx["contract"] == mw.Context("counterparty")["contract"] {
			t.Fatal("the contract address has no upper-case hex digit; the test proves nothing")
		}
		res, err := rd.Decrypt(ctx, []apiv1.DecryptItem{{Ciphertext: raw.Counterparty, Context: ethersCtx}})
		if err != nil || res[0].Error != nil || string(res[0].Plaintext) != cp {
			t.Fatalf("WalletDecrypter.Decrypt(ethers-style context) = %+v, %v; want %q", res, err, cp)
		}
		bad := map[string]string{"chain_id": "mainnet", "contract": mw.Address().Hex(), "field": "counterparty"}
		if _, err := rd.Decrypt(ctx, []apiv1.DecryptItem{{Ciphertext: raw.Counterparty, Context: bad}}); !errors.Is(err, envelope.ErrInvalidContext) {
			t.Errorf("WalletDecrypter.Decrypt(chain_id mainnet) error = %v, want ErrInvalidContext", err)
		}
	})
	t.Run("fail/item-of-another-chain", func(t *testing.T) {
		// The decrypter signs for its chain; an item of another chain is
		// refused before anything is signed or sent.
		other := mw.Context("counterparty")
		other["chain_id"] = "1"
		if _, err := rd.Sign(ctx, []apiv1.DecryptItem{{Ciphertext: raw.Counterparty, Context: other}}); err == nil || !strings.Contains(err.Error(), "is not the decrypter's chain") {
			t.Errorf("Sign(item of chain 1) error = %v, want a refusal naming the chain", err)
		}
	})
	t.Run("fail/replayed-signature", func(t *testing.T) {
		auth, err := rd.Sign(ctx, items)
		if err != nil {
			t.Fatal(err)
		}
		sd := ethereum.SignedDecrypter{Client: w.wallet, Auth: auth}
		if res, err := sd.Decrypt(ctx, items); err != nil || string(res[0].Plaintext) != cp {
			t.Fatalf("first Decrypt = %v, %v", res, err)
		}
		_, err = sd.Decrypt(ctx, items)
		wantCode(t, "Decrypt(replayed)", err, apiv1.CodeUnauthenticated)
	})

	// Hand-made requests, each refused with 401.
	sign := func(t *testing.T, mutate func(*ethid.Request), texts []string) apiv1.EthAuth {
		t.Helper()
		r, err := ethid.NewRequest(ethid.Domain{NetworkID: w.networkID, ChainID: w.chain.ChainID.Uint64()},
			example.Address(w.reader), ethid.ActionDecrypt, texts, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			mutate(r)
		}
		a, err := r.Sign(w.reader, ethid.SchemeEIP712)
		if err != nil {
			t.Fatal(err)
		}
		return apiv1.EthAuth(a)
	}
	otherEnv, err := mw.SealString(ctx, "counterparty", []byte("Initech"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*ethid.Request)
		texts  []string
		edit   func(*apiv1.EthAuth)
	}{
		{name: "fail/expired", mutate: func(r *ethid.Request) { r.Expiry = uint64(time.Now().Add(-time.Hour).Unix()) }},
		{name: "fail/expiry-too-far", mutate: func(r *ethid.Request) { r.Expiry = uint64(time.Now().Add(time.Hour).Unix()) }},
		{name: "fail/other-network", mutate: func(r *ethid.Request) { r.NetworkID = "ff" + w.networkID[2:] }},
		{name: "fail/other-action", mutate: func(r *ethid.Request) { r.Action = "GET /orders/2" }},
		{name: "fail/signed-for-another-envelope", texts: []string{otherEnv}},
		{name: "fail/tampered-signature", edit: func(a *apiv1.EthAuth) { a.Signature = a.Signature[:10] + flipHex(a.Signature[10]) + a.Signature[11:] }},
		{name: "fail/tampered-chain-id", edit: func(a *apiv1.EthAuth) { a.ChainID++ }},
		{name: "fail/tampered-expiry", edit: func(a *apiv1.EthAuth) { a.Expiry-- }},
		{name: "fail/other-account", edit: func(a *apiv1.EthAuth) { a.Account = example.Address(w.stranger).Hex() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			texts := tc.texts
			if texts == nil {
				texts = []string{raw.Counterparty}
			}
			a := sign(t, tc.mutate, texts)
			if tc.edit != nil {
				tc.edit(&a)
			}
			_, err := w.wallet.EthDecrypt(ctx, apiv1.EthDecryptRequest{Ciphertext: raw.Counterparty, Context: mw.Context("counterparty"), Auth: a})
			wantCode(t, "EthDecrypt", err, apiv1.CodeUnauthenticated)
		})
	}

	t.Run("ok/off-chain-record", func(t *testing.T) {
		rec, digest, err := mw.SealRecord(ctx, "7", map[string][]byte{"price": []byte("12.00 GBP"), "counterparty": []byte("Umbrella plc")})
		if err != nil {
			t.Fatal(err)
		}
		ob := example.NewOrderBook()
		if _, err := example.Transact(ctx, w.chain, mw.Address(), ob.PackCommitRecord(big.NewInt(7), digest)); err != nil {
			t.Fatal(err)
		}
		data, err := ob.Instance(w.chain.Backend, mw.Address()).CallRaw(&bind.CallOpts{Context: ctx}, ob.PackRecordDigest(big.NewInt(7)))
		if err != nil {
			t.Fatal(err)
		}
		onChain, err := ob.UnpackRecordDigest(data)
		if err != nil || onChain != digest {
			t.Fatalf("recordDigest(7) = %x, %v; want %x", onChain, err, digest)
		}
		got, err := mw.OpenRecord(ctx, rd, rec, onChain)
		if err != nil || string(got["price"]) != "12.00 GBP" || string(got["counterparty"]) != "Umbrella plc" {
			t.Fatalf("OpenRecord() = %q, %v", got, err)
		}
		tampered := *rec
		tampered.Fields = map[string]string{"price": rec.Fields["counterparty"], "counterparty": rec.Fields["price"]}
		if _, err := mw.OpenRecord(ctx, rd, &tampered, onChain); !errors.Is(err, ethereum.ErrDigestMismatch) {
			t.Errorf("OpenRecord(tampered) error = %v, want ErrDigestMismatch", err)
		}
		// A record re-committed under a new digest still fails: the AAD
		// binds each field's name and record id.
		td, _ := tampered.Digest()
		_, err = mw.OpenRecord(ctx, rd, &tampered, td)
		wantCode(t, "OpenRecord(fields swapped, digest recomputed)", err, apiv1.CodeDecryptionFailed)
	})

	t.Run("ok/audited", func(t *testing.T) {
		entries, err := w.admin.AuditTail(ctx, 200)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if e.Action == "decrypt" {
				seen[e.Principal+" "+e.Outcome] = true
			}
		}
		for _, want := range []string{ethid.Party(example.Address(w.reader)) + " allow", ethid.Party(example.Address(w.stranger)) + " deny"} {
			if !seen[want] {
				t.Errorf("audit log has no decrypt entry %q; has %v", want, seen)
			}
		}
		v, err := w.admin.AuditVerify(ctx)
		if err != nil || !v.OK {
			t.Errorf("AuditVerify() = %+v, %v", v, err)
		}
	})
}

// flipHex returns a different hex digit than c.
func flipHex(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}
