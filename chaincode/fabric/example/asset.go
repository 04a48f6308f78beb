// Package example is a complete asset-transfer contract
// (fabric-contract-api-go) whose sensitive fields are encrypted through the
// keymesh node beside the peer, with package chaincode/fabric.
//
// An asset's colour, size and owning organisation are public. Its appraised
// value and its owner's personal data are envelopes on the ledger, and the
// purchase terms an organisation records for it live in a private data
// collection, encrypted as well. Plaintext reaches the contract only
// through the transient map, never as an argument (arguments are written
// to the ledger with the transaction).
//
// Who reads what is the keymesh policy's decision, not the contract's: the
// owner org's node holds the keys (asset/appraised-value, asset/owner-pii,
// asset/terms) and grants them. A client of another org can read the
// private fields once granted (as org:Org2MSP, or one identity as
// fabric:Org2MSP/<subject>), and ReadAssetPrivate fails with
// fabric.ErrNotGranted otherwise; ReadAsset returns the public fields to
// anyone.
//
// The contract is run as chaincode-as-a-service by cmd/asset-ccaas; see
// README.md in this directory for the build, the package and the peer
// set-up, and cmd/asset-client for a fabric-gateway client.
package example

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/keymesh/keymesh/chaincode/fabric"
)

// The keymesh keys the contract's fields are encrypted under. The owner
// org's operator creates them and grants encrypt and decrypt to its own
// clients (org:Org1MSP) and decrypt to those who may read.
const (
	KeyAppraisedValue = "asset/appraised-value"
	KeyOwnerPII       = "asset/owner-pii"
	KeyTerms          = "asset/terms"
)

// Transient map entries the transactions read.
const (
	TransientAssetProperties = "asset_properties" // CreateAsset: AssetProperties
	TransientNewOwner        = "new_owner"        // TransferAsset: Person
	TransientTerms           = "terms"            // SetPurchaseTerms: PurchaseTerms
	TransientSealed          = "asset_sealed"     // CreateAssetSealed: SealedProperties, sealed by the client
)

// SealedProperties is what a client seals itself for CreateAssetSealed,
// with fabric.SealRecord(ctx, api, channel, chaincode, id, props): the
// tagged fields of Asset, under the same keys and JSON names.
type SealedProperties struct {
	AppraisedValue int    `json:"appraisedValue" keymesh:"asset/appraised-value"`
	Owner          Person `json:"owner" keymesh:"asset/owner-pii"`
}

// Person is an owner's personal data.
type Person struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	TaxID string `json:"taxId"`
}

// Asset is the world-state record of an asset. AppraisedValue and Owner
// are stored as keymesh envelopes.
type Asset struct {
	DocType        string `json:"docType"`
	ID             string `json:"ID"`
	Color          string `json:"color"`
	Size           int    `json:"size"`
	OwnerOrg       string `json:"ownerOrg"`
	AppraisedValue int    `json:"appraisedValue" keymesh:"asset/appraised-value"`
	Owner          Person `json:"owner" keymesh:"asset/owner-pii"`
}

// AssetPublic is the part of an asset anyone on the channel may read.
type AssetPublic struct {
	DocType  string `json:"docType"`
	ID       string `json:"ID"`
	Color    string `json:"color"`
	Size     int    `json:"size"`
	OwnerOrg string `json:"ownerOrg"`
}

// AssetProperties is the transient input of CreateAsset.
type AssetProperties struct {
	AppraisedValue int    `json:"appraisedValue"`
	Owner          Person `json:"owner"`
}

// PurchaseTerms are what an organisation agreed for an asset, kept in a
// private data collection; the price and conditions are envelopes there
// too, so the collection's side database and its backups hold no
// plaintext.
type PurchaseTerms struct {
	AssetID    string `json:"assetId"`
	Org        string `json:"org"`
	Price      int    `json:"price" keymesh:"asset/terms"`
	Conditions string `json:"conditions" keymesh:"asset/terms"`
}

const docTypeAsset = "asset"

// Contract is the asset-transfer contract.
type Contract struct {
	contractapi.Contract
	km *fabric.Client
}

// NewContract returns the contract, encrypting through km.
func NewContract(km *fabric.Client) *Contract {
	c := &Contract{km: km}
	c.Name = "asset"
	c.Info.Title = "keymesh asset transfer"
	c.Info.Version = "1.0.0"
	return c
}

// CreateAsset creates asset id, owned by the invoking client's
// organisation. The appraised value and the owner's personal data come
// from the transient map entry "asset_properties" and are stored
// encrypted.
func (c *Contract) CreateAsset(ctx contractapi.TransactionContextInterface, id, color string, size int) error {
	if id == "" {
		return errors.New("asset id must not be empty")
	}
	stub := ctx.GetStub()
	exists, err := c.AssetExists(ctx, id)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("asset %q already exists", id)
	}
	var props AssetProperties
	if err := fabric.Transient(stub, TransientAssetProperties, &props); err != nil {
		return err
	}
	msp, err := ctx.GetClientIdentity().GetMSPID()
	if err != nil {
		return fmt.Errorf("reading the client's MSP: %w", err)
	}
	a := Asset{DocType: docTypeAsset, ID: id, Color: color, Size: size, OwnerOrg: msp,
		AppraisedValue: props.AppraisedValue, Owner: props.Owner}
	return c.km.PutState(stub, id, &a)
}

// CreateAssetSealed creates asset id from envelopes the client sealed
// through its own organisation's keymesh node (the client-sealed pattern):
// the transient map entry "asset_sealed" holds SealedProperties with its
// fields as envelopes bound to this channel, chaincode, asset id and
// field. The contract checks their form and stores them without calling
// keymesh, so the endorsing organisations' nodes need no key.
func (c *Contract) CreateAssetSealed(ctx contractapi.TransactionContextInterface, id, color string, size int) error {
	if id == "" {
		return errors.New("asset id must not be empty")
	}
	stub := ctx.GetStub()
	exists, err := c.AssetExists(ctx, id)
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("asset %q already exists", id)
	}
	sealed, err := fabric.SealedTransient(stub, TransientSealed, SealedProperties{})
	if err != nil {
		return err
	}
	msp, err := ctx.GetClientIdentity().GetMSPID()
	if err != nil {
		return fmt.Errorf("reading the client's MSP: %w", err)
	}
	pub, err := json.Marshal(AssetPublic{DocType: docTypeAsset, ID: id, Color: color, Size: size, OwnerOrg: msp})
	if err != nil {
		return err
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(pub, &rec); err != nil {
		return err
	}
	for _, f := range []string{"appraisedValue", "owner"} {
		if v, ok := sealed[f]; ok {
			rec[f] = v
		}
	}
	return fabric.PutSealedState(stub, id, rec)
}

// ReadAsset returns the public fields of asset id; it needs no grant.
func (c *Contract) ReadAsset(ctx contractapi.TransactionContextInterface, id string) (*AssetPublic, error) {
	b, err := ctx.GetStub().GetState(id)
	if err != nil {
		return nil, fmt.Errorf("reading asset %q: %w", id, err)
	}
	if b == nil {
		return nil, fmt.Errorf("asset %q does not exist", id)
	}
	var a AssetPublic
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decoding asset %q: %w", id, err)
	}
	return &a, nil
}

// ReadAssetPrivate returns asset id with its private fields, opened by the
// keymesh node for the invoking client: it fails with fabric.ErrNotGranted
// unless a grant names the client or its organisation.
func (c *Contract) ReadAssetPrivate(ctx contractapi.TransactionContextInterface, id string) (*Asset, error) {
	var a Asset
	if err := c.km.GetState(ctx.GetStub(), id, &a); err != nil {
		return nil, fmt.Errorf("asset %q: %w", id, err)
	}
	return &a, nil
}

// AssetExists reports whether asset id exists.
func (c *Contract) AssetExists(ctx contractapi.TransactionContextInterface, id string) (bool, error) {
	b, err := ctx.GetStub().GetState(id)
	if err != nil {
		return false, fmt.Errorf("reading asset %q: %w", id, err)
	}
	return b != nil, nil
}

// TransferAsset gives asset id to newOwnerOrg, with the new owner's
// personal data from the transient map entry "new_owner". Only a client of
// the current owner organisation may transfer, and it must be able to
// read (decrypt) and write (encrypt) the asset's private fields.
func (c *Contract) TransferAsset(ctx contractapi.TransactionContextInterface, id, newOwnerOrg string) error {
	if newOwnerOrg == "" {
		return errors.New("the new owner organisation must not be empty")
	}
	stub := ctx.GetStub()
	var a Asset
	if err := c.km.GetState(stub, id, &a); err != nil {
		return fmt.Errorf("asset %q: %w", id, err)
	}
	if err := c.requireOwner(ctx, &a); err != nil {
		return err
	}
	var owner Person
	if err := fabric.Transient(stub, TransientNewOwner, &owner); err != nil {
		return err
	}
	a.OwnerOrg, a.Owner = newOwnerOrg, owner
	return c.km.PutState(stub, id, &a)
}

// DeleteAsset deletes asset id; only a client of the owner organisation
// may. (The envelopes stay in the ledger's history: destroying the keymesh
// key is what makes them unreadable.)
func (c *Contract) DeleteAsset(ctx contractapi.TransactionContextInterface, id string) error {
	a, err := c.ReadAsset(ctx, id)
	if err != nil {
		return err
	}
	msp, err := ctx.GetClientIdentity().GetMSPID()
	if err != nil {
		return fmt.Errorf("reading the client's MSP: %w", err)
	}
	if msp != a.OwnerOrg {
		return fmt.Errorf("asset %q is owned by %s; a client of %s cannot delete it", id, a.OwnerOrg, msp)
	}
	return ctx.GetStub().DelState(id)
}

// SetPurchaseTerms records, in private data collection collection, the
// terms the invoking organisation agreed for asset id, from the transient
// map entry "terms". The price and conditions are encrypted.
func (c *Contract) SetPurchaseTerms(ctx contractapi.TransactionContextInterface, collection, id string) error {
	stub := ctx.GetStub()
	exists, err := c.AssetExists(ctx, id)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("asset %q does not exist", id)
	}
	var t PurchaseTerms
	if err := fabric.Transient(stub, TransientTerms, &t); err != nil {
		return err
	}
	msp, err := ctx.GetClientIdentity().GetMSPID()
	if err != nil {
		return fmt.Errorf("reading the client's MSP: %w", err)
	}
	t.AssetID, t.Org = id, msp
	return c.km.PutPrivateData(stub, collection, id, &t)
}

// ReadPurchaseTerms returns the terms recorded for asset id in collection,
// opened for the invoking client.
func (c *Contract) ReadPurchaseTerms(ctx contractapi.TransactionContextInterface, collection, id string) (*PurchaseTerms, error) {
	var t PurchaseTerms
	if err := c.km.GetPrivateData(ctx.GetStub(), collection, id, &t); err != nil {
		return nil, fmt.Errorf("purchase terms of %q: %w", id, err)
	}
	return &t, nil
}

func (c *Contract) requireOwner(ctx contractapi.TransactionContextInterface, a *Asset) error {
	msp, err := ctx.GetClientIdentity().GetMSPID()
	if err != nil {
		return fmt.Errorf("reading the client's MSP: %w", err)
	}
	if msp != a.OwnerOrg {
		return fmt.Errorf("asset %q is owned by %s; a client of %s cannot transfer it", a.ID, a.OwnerOrg, msp)
	}
	return nil
}
