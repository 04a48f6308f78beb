package fabric

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// tx is what a keymesh request needs from the transaction.
type tx struct {
	id        string
	time      time.Time
	channel   string
	chaincode string
	proposal  string // standard base64 of the marshalled SignedProposal
}

// txOf reads the transaction facts from stub.
func (c *Client) txOf(stub shim.ChaincodeStubInterface) (tx, error) {
	if stub == nil {
		return tx{}, errors.New("keymesh: nil stub")
	}
	t := tx{id: stub.GetTxID(), channel: stub.GetChannelID(), chaincode: c.chaincode}
	if t.id == "" {
		return tx{}, errors.New("keymesh: the stub has no transaction id")
	}
	ts, err := stub.GetTxTimestamp()
	if err != nil {
		return tx{}, fmt.Errorf("keymesh: transaction timestamp: %w", err)
	}
	if ts == nil || !ts.IsValid() {
		return tx{}, errors.New("keymesh: the stub has no valid transaction timestamp")
	}
	t.time = ts.AsTime()
	// The node verifies the creator from the signed proposal itself: the
	// creator's signature over it, its tx id, channel, chaincode and time.
	sp, err := stub.GetSignedProposal()
	if err != nil {
		return tx{}, fmt.Errorf("keymesh: signed proposal: %w", err)
	}
	if sp == nil || len(sp.GetProposalBytes()) == 0 {
		return tx{}, errors.New("keymesh: the stub has no signed proposal")
	}
	raw, err := proto.Marshal(sp)
	if err != nil {
		return tx{}, fmt.Errorf("keymesh: signed proposal: %w", err)
	}
	t.proposal = base64.StdEncoding.EncodeToString(raw)
	if t.chaincode == "" {
		if t.chaincode, err = chaincodeName(stub); err != nil {
			return tx{}, err
		}
	}
	return t, nil
}

// chaincodeName returns the chaincode the proposal targets, from its
// channel header's ChaincodeHeaderExtension (what the endorser uses).
func chaincodeName(stub shim.ChaincodeStubInterface) (string, error) {
	fail := func(what string, err error) (string, error) {
		if err != nil {
			return "", fmt.Errorf("keymesh: chaincode name from the proposal: %s: %w (or set KEYMESH_CHAINCODE_NAME)", what, err)
		}
		return "", fmt.Errorf("keymesh: chaincode name from the proposal: %s (or set KEYMESH_CHAINCODE_NAME)", what)
	}
	sp, err := stub.GetSignedProposal()
	if err != nil {
		return fail("signed proposal", err)
	}
	if sp == nil {
		return fail("no signed proposal", nil)
	}
	var prop peer.Proposal
	if err := proto.Unmarshal(sp.GetProposalBytes(), &prop); err != nil {
		return fail("proposal", err)
	}
	var hdr common.Header
	if err := proto.Unmarshal(prop.GetHeader(), &hdr); err != nil {
		return fail("header", err)
	}
	var ch common.ChannelHeader
	if err := proto.Unmarshal(hdr.GetChannelHeader(), &ch); err != nil {
		return fail("channel header", err)
	}
	var ext peer.ChaincodeHeaderExtension
	if err := proto.Unmarshal(ch.GetExtension(), &ext); err != nil {
		return fail("chaincode header extension", err)
	}
	name := ext.GetChaincodeId().GetName()
	if name == "" {
		return fail("no chaincode id", nil)
	}
	return name, nil
}

// context returns the envelope context of a value stored at loc.
func (t tx) context(loc Location) map[string]string {
	m := map[string]string{"channel": t.channel, "chaincode": t.chaincode, "key": loc.Key, "field": loc.Field}
	if loc.Collection != "" {
		m["collection"] = loc.Collection
	}
	return m
}

// ctx returns a request context bounded by the client's timeout that
// carries the signed proposal.
func (c *Client) ctx(t tx) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	return withProposal(ctx, t.proposal), cancel
}
