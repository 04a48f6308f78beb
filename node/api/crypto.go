package api

import (
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/vault/envelope"
)

// The crypto routes bind and check the request's shape, call the domain
// core (package kms: decide, audit durably, seal or open) and map its
// results and errors to JSON.

func (s *Server) encrypt(c *gin.Context, cl caller) {
	var req apiv1.EncryptRequest
	if err := bindFast(c, &req, decodeEncryptFast); err != nil {
		s.fail(c, err)
		return
	}
	mode, err := envelope.ParseMode(req.Mode)
	if err != nil {
		s.fail(c, badRequest(err.Error()))
		return
	}
	if req.Key == "" {
		s.fail(c, badRequest(`"key" is required`))
		return
	}
	if err := envelope.CheckKeyName(req.Key); err != nil {
		s.fail(c, err)
		return
	}
	items := req.Batch
	batch := len(items) > 0
	if batch {
		if req.Plaintext != nil || req.Context != nil || req.TxID != "" || req.TxTime != nil {
			s.fail(c, badRequest("a batch request carries plaintext, context, tx_id and tx_time in its items only"))
			return
		}
		if len(items) > apiv1.MaxBatchItems {
			s.fail(c, tooLarge(fmt.Sprintf("batch of %d items is over the limit of %d", len(items), apiv1.MaxBatchItems)))
			return
		}
	}
	var one [1]apiv1.EncryptItem // a single item's, without a heap slice
	if !batch {
		one[0] = apiv1.EncryptItem{Plaintext: req.Plaintext, Context: req.Context, TxID: req.TxID, TxTime: req.TxTime}
		items = one[:]
	}
	if err := ethid.CanonicalizeEncrypt(items, batch); err != nil { // chain_id, contract: one form each
		s.fail(c, err)
		return
	}
	var inOne [1]kms.EncryptItem
	in := inOne[:]
	if batch {
		in = make([]kms.EncryptItem, len(items))
	}
	for i, it := range items {
		in[i] = kms.EncryptItem{Plaintext: it.Plaintext, Context: it.Context, TxID: it.TxID}
		if it.TxTime != nil {
			in[i].TxTime = *it.TxTime
		}
	}
	sealed, err := s.cfg.Core.Encrypt(c, s.kmsCallerOf(cl), req.Key, mode, in)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !batch {
		if err := sealed[0].Err; err != nil {
			s.fail(c, err)
			return
		}
		env := sealed[0].Envelope
		writeEncrypt(c, &apiv1.EncryptResponse{Ciphertext: env.Text(), Key: req.Key, Version: env.Version})
		return
	}
	results := make([]apiv1.EncryptResult, len(sealed))
	for i, r := range sealed {
		if r.Err != nil {
			e := toError(r.Err).body()
			results[i].Error = &e
			continue
		}
		results[i] = apiv1.EncryptResult{Ciphertext: r.Envelope.Text(), Version: r.Envelope.Version}
	}
	writeEncrypt(c, &apiv1.EncryptResponse{Key: req.Key, Batch: results})
}

func (s *Server) decrypt(c *gin.Context, cl caller) {
	var req apiv1.DecryptRequest
	if err := bindFast(c, &req, decodeDecryptFast); err != nil {
		s.fail(c, err)
		return
	}
	items, batch, err := decryptItems(req)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.decryptFor(c, s.kmsCallerOf(cl), items, batch, nil)
}

// decryptItems checks a decrypt request's shape and returns its items and
// whether it is a batch.
func decryptItems(req apiv1.DecryptRequest) ([]kms.DecryptItem, bool, error) {
	items := req.Batch
	batch := len(items) > 0
	if batch {
		if req.Ciphertext != "" || req.Context != nil {
			return nil, false, badRequest("a batch request carries ciphertext and context in its items only")
		}
		if len(items) > apiv1.MaxBatchItems {
			return nil, false, tooLarge(fmt.Sprintf("batch of %d items is over the limit of %d", len(items), apiv1.MaxBatchItems))
		}
	} else {
		if req.Ciphertext == "" {
			return nil, false, badRequest(`"ciphertext" is required`)
		}
		items = []apiv1.DecryptItem{{Ciphertext: req.Ciphertext, Context: req.Context}}
	}
	if err := ethid.CanonicalizeDecrypt(items, batch); err != nil { // chain_id, contract: one form each
		return nil, false, err
	}
	out := make([]kms.DecryptItem, len(items))
	for i, it := range items {
		out[i] = kms.DecryptItem{Ciphertext: it.Ciphertext, Context: it.Context}
	}
	return out, batch, nil
}

// decryptFor decrypts items for cl through the core (with the decisions
// already made, if any) and answers.
func (s *Server) decryptFor(c *gin.Context, cl kms.Caller, items []kms.DecryptItem, batch bool, pre kms.Decisions) {
	opened, err := s.cfg.Core.Decrypt(c, cl, items, pre)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !batch {
		o := opened[0]
		if o.Err != nil {
			s.fail(c, o.Err)
			return
		}
		writeDecrypt(c, &apiv1.DecryptResponse{Plaintext: o.Plaintext, Key: o.Key, Version: o.Version})
		return
	}
	results := make([]apiv1.DecryptResult, len(opened))
	for i, o := range opened {
		if o.Err != nil {
			e := toError(o.Err).body()
			results[i].Error = &e
			continue
		}
		results[i].Plaintext = o.Plaintext
	}
	writeDecrypt(c, &apiv1.DecryptResponse{Batch: results})
}

// writeEncrypt and writeDecrypt answer 200 with r, as c.JSON would
// (fastjson.go).
func writeEncrypt(c *gin.Context, r *apiv1.EncryptResponse) {
	bp := getBuf()
	*bp = appendEncryptResponse(*bp, r)
	writeJSON(c, *bp)
	putBuf(bp)
}

func writeDecrypt(c *gin.Context, r *apiv1.DecryptResponse) {
	bp := getBuf()
	*bp = appendDecryptResponse(*bp, r)
	writeJSON(c, *bp)
	putBuf(bp)
}
