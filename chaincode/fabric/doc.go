// Package fabric lets Hyperledger Fabric chaincode keep its sensitive
// fields encrypted on the ledger, through the keymesh node (keymeshd) that
// runs beside the peer. Values become AES-256-GCM envelopes ("km1:…") before
// PutState or PutPrivateData and are opened again after GetState or
// GetPrivateData, by the node, for callers that hold a grant.
//
// # Start here
//
// Make one [Client] when the chaincode starts, from its environment, and
// call [Client.Check] to fail fast on a wrong address or token:
//
//	KEYMESH_ADDR            the local node, host:port or URL (default 127.0.0.1:8420)
//	KEYMESH_TOKEN           a token with the chaincode role (required; keymesh token create --role chaincode --channel C --chaincode N --msp M)
//	KEYMESH_CA_FILE         PEM CA bundle to verify the node's TLS certificate (optional; implies https)
//	KEYMESH_CHAINCODE_NAME  the chaincode name bound into each envelope (optional; default: from the proposal)
//
//	km, err := fabric.NewFromEnv()
//
// Tag the sensitive fields of a state struct with the keymesh key that
// protects them, and store and load the struct through the client:
//
//	type Asset struct {
//		ID             string `json:"ID"`
//		Color          string `json:"color"`
//		AppraisedValue int    `json:"appraisedValue" keymesh:"asset/appraised-value"`
//		Owner          Person `json:"owner" keymesh:"asset/owner-pii"`
//	}
//
//	err = km.PutState(stub, asset.ID, &asset)       // tagged fields → envelopes → PutState
//	err = km.GetState(stub, id, &asset)              // GetState → envelopes → tagged fields
//	err = km.PutPrivateData(stub, "assetCollection", id, &terms)
//	err = km.GetPrivateData(stub, "assetCollection", id, &terms)
//
// [Client.Marshal] and [Client.Unmarshal] do the same without touching the
// stub's state, and [Client.EncryptValue] and [Client.DecryptValue] handle
// one value at a time.
//
// # What a call takes from the stub
//
//   - The transaction id and timestamp, as the node reads them from the
//     verified signed proposal: writes use keymesh's endorsement mode, in
//     which the synthetic IV derives from the transaction id and creator
//     (and the associated data and plaintext) and the key version is the
//     newest active at the transaction timestamp. Every endorsing peer's node
//     therefore produces the same bytes for the same proposal, and the
//     endorsements match, even while a rotation is activating.
//   - The channel, the chaincode name, the state key and the field's JSON
//     name (plus the collection for private data): they are the envelope's
//     context, bound into its associated data as
//     {"channel","chaincode","key","field"[,"collection"]}. An envelope
//     copied to another key, field, collection, chaincode or channel fails
//     to open ([ErrDecryptionFailed]).
//   - The signed proposal (stub.GetSignedProposal), sent to the node with
//     every request. The node verifies the creator's signature over it,
//     its tx id and timestamp, the creator's certificate against the CAs,
//     CRLs and NodeOUs it trusts for that MSP, and that channel, chaincode
//     and MSP are within the chaincode token's binding; then it decides as
//     the creator, fabric:<MSP>/<subject> and org:<MSP>: a query by a
//     client without a decrypt grant fails with [ErrNotGranted], and a
//     write by a client without an encrypt grant fails the same way. The
//     proposal holds the transient map: it goes only to the local node.
//
// # Client-sealed records
//
// When endorsing organisations must not hold a key, the submitting client
// seals the fields itself through its own organisation's node
// ([SealRecord], random mode) and passes the record in the transient map;
// the chaincode checks and stores it with [SealedTransient] and
// [PutSealedState], calling no keymesh node. Readers open it with
// [Client.GetState] as usual.
//
// # The transient map
//
// Arguments of a Fabric proposal are written to the ledger with the
// transaction, so plaintext must not travel as an argument. Clients put it
// in the proposal's transient map, which reaches the chaincode but is never
// recorded; [Transient] decodes a JSON value from it:
//
//	var in struct {
//		AppraisedValue int    `json:"appraisedValue"`
//		Owner          Person `json:"owner"`
//	}
//	if err := fabric.Transient(stub, "asset_properties", &in); err != nil { … }
//
// See chaincode/fabric/example for a complete contract and a
// fabric-gateway client that fills the transient map.
//
// # Encoding of tagged fields
//
// A tagged field's plaintext is its JSON encoding; on the ledger the field
// holds the envelope as a JSON string, and the document's keys are written
// in sorted order (deterministic, as endorsement needs). Only fields of the
// top-level struct may be tagged. A field left out by `omitempty` is not
// encrypted and its absence shows; leave omitempty off sensitive fields.
// Any field type works, including structs, which are encrypted whole.
//
// # Errors and secrets
//
// Failures of one field are [*FieldError]s that name the operation, state
// key, collection, field and keymesh key, and match errors.Is with
// [ErrNotGranted], [ErrDecryptionFailed], [ErrCreatorRefused],
// [ErrKeyDestroyed] or [ErrNotEncrypted] as they apply; contracts can
// return them as they are. The package logs nothing, and no error quotes a
// plaintext, a token or an envelope.
package fabric
