package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

func (s *Server) encrypt(c *gin.Context) {
	var req apiv1.EncryptRequest
	if err := bind(c, &req); err != nil {
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
	} else {
		items = []apiv1.EncryptItem{{Plaintext: req.Plaintext, Context: req.Context, TxID: req.TxID, TxTime: req.TxTime}}
	}
	if err := ethid.CanonicalizeEncrypt(items, batch); err != nil { // chain_id, contract: one form each
		s.fail(c, err)
		return
	}

	cl := callerOf(c)
	if mode == envelope.ModeEndorsement && cl.proposal == nil {
		// Fabric endorsement mode: only with a verified proposal (fabric.go).
		err := s.checkEndorsement(cl, req.Key, items[0])
		s.metrics.decisions.WithLabelValues("encrypt", "deny").Inc()
		if aerr := s.record(c, audit.Entry{Principal: cl.name, Action: "encrypt", Key: req.Key, Count: len(items),
			Outcome: "deny", Reason: "endorsement mode needs a chaincode token with a verified signed proposal"}); aerr != nil {
			s.fail(c, aerr)
			return
		}
		s.fail(c, err)
		return
	}
	now := s.cfg.Clock()
	d := s.cfg.Keys.Policy().Decide(cl.principal, req.Key, policy.OpEncrypt, now)
	entry := audit.Entry{Principal: cl.name, Action: "encrypt", Key: req.Key, Count: len(items), Reason: d.Reason}
	if !d.Allowed {
		s.metrics.decisions.WithLabelValues("encrypt", "deny").Inc()
		entry.Outcome = "deny"
		if err := s.record(c, entry); err != nil {
			s.fail(c, err)
			return
		}
		s.fail(c, d.Err())
		return
	}
	s.metrics.decisions.WithLabelValues("encrypt", "allow").Inc()

	results := make([]apiv1.EncryptResult, len(items))
	var firstErr error
	failed := 0
	var version uint32
	for i, it := range items {
		in := vault.EncryptInput{Key: req.Key, Mode: mode, Context: it.Context, TxID: it.TxID, Plaintext: it.Plaintext}
		if it.TxTime != nil {
			in.TxTime = *it.TxTime
		}
		var err error
		if mode == envelope.ModeEndorsement {
			// Tx id and time come from the verified proposal, and the
			// creator enters the nonce derivation (fabric.go).
			err = s.checkEndorsement(cl, req.Key, it)
			in.TxID, in.TxTime = endorsementInput(cl.proposal), cl.proposal.Timestamp
		}
		var env *envelope.Envelope
		if err == nil {
			env, err = s.cfg.Vault.Encrypt(in)
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			e := toError(err).body()
			results[i].Error = &e
			continue
		}
		results[i] = apiv1.EncryptResult{Ciphertext: env.Text(), Version: env.Version}
		version = max(version, env.Version)
	}
	entry.Outcome, entry.Version = "allow", version
	if failed > 0 {
		entry.Reason += "; " + strconv.Itoa(failed) + " item(s) failed"
	}
	if err := s.record(c, entry); err != nil {
		s.fail(c, err)
		return
	}
	s.metrics.items.WithLabelValues("encrypt", "ok").Add(float64(len(items) - failed))
	s.metrics.items.WithLabelValues("encrypt", "error").Add(float64(failed))
	if !batch {
		if firstErr != nil {
			s.fail(c, firstErr)
			return
		}
		c.JSON(http.StatusOK, apiv1.EncryptResponse{Ciphertext: results[0].Ciphertext, Key: req.Key, Version: results[0].Version})
		return
	}
	c.JSON(http.StatusOK, apiv1.EncryptResponse{Key: req.Key, Batch: results})
}

// decryptGroup is the decision for one key within a (batch) decrypt.
type decryptGroup struct {
	decision policy.Decision
	count    int
	failed   int
	version  uint32
}

func (s *Server) decrypt(c *gin.Context) {
	var req apiv1.DecryptRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	items, batch, err := decryptItems(req)
	if err != nil {
		s.fail(c, err)
		return
	}
	cl := callerOf(c)
	s.decryptFor(c, cl, items, batch, func(key string, now time.Time) policy.Decision {
		return s.cfg.Keys.Policy().Decide(cl.principal, key, policy.OpDecrypt, now)
	})
}

// decryptItems checks a decrypt request's shape and returns its items and
// whether it is a batch.
func decryptItems(req apiv1.DecryptRequest) ([]apiv1.DecryptItem, bool, error) {
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
	return items, batch, nil
}

// decryptFor decrypts items for cl, deciding each key once with decide,
// auditing every decision before any plaintext leaves, and answers.
func (s *Server) decryptFor(c *gin.Context, cl caller, items []apiv1.DecryptItem, batch bool, decide func(key string, now time.Time) policy.Decision) {
	now := s.cfg.Clock()
	results := make([]apiv1.DecryptResult, len(items))
	errs := make([]error, len(items))
	groups := map[string]*decryptGroup{}
	var order []string
	var lastKey string
	var lastVersion uint32
	for i, it := range items {
		env, err := envelope.ParseText(it.Ciphertext)
		if err != nil {
			errs[i] = err
			continue
		}
		g, ok := groups[env.Key]
		if !ok {
			g = &decryptGroup{decision: decide(env.Key, now)}
			groups[env.Key] = g
			order = append(order, env.Key)
		}
		g.count++
		if !g.decision.Allowed {
			errs[i] = g.decision.Err()
			continue
		}
		pt, err := s.cfg.Vault.Open(env, it.Context)
		if err != nil {
			g.failed++
			errs[i] = err
			continue
		}
		g.version = max(g.version, env.Version)
		results[i].Plaintext = pt
		lastKey, lastVersion = env.Key, env.Version
	}

	// One audit entry per key (and one for unparseable envelopes); all are
	// durable before any plaintext leaves.
	malformed := 0
	for _, err := range errs {
		if err != nil && !isDecisionOrCrypto(err) {
			malformed++
		}
	}
	for _, k := range order {
		g := groups[k]
		e := audit.Entry{Principal: cl.name, Action: "decrypt", Key: k, Count: g.count, Version: g.version, Reason: g.decision.Reason}
		if g.decision.Allowed {
			e.Outcome = "allow"
			s.metrics.decisions.WithLabelValues("decrypt", "allow").Inc()
			if g.failed > 0 {
				e.Reason += "; " + strconv.Itoa(g.failed) + " item(s) failed to decrypt"
			}
		} else {
			e.Outcome = "deny"
			s.metrics.decisions.WithLabelValues("decrypt", "deny").Inc()
		}
		if err := s.record(c, e); err != nil {
			s.fail(c, err)
			return
		}
	}
	if malformed > 0 {
		if err := s.record(c, audit.Entry{Principal: cl.name, Action: "decrypt", Outcome: "error", Reason: "malformed envelope", Count: malformed}); err != nil {
			s.fail(c, err)
			return
		}
	}

	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			e := toError(err).body()
			results[i] = apiv1.DecryptResult{Error: &e}
		}
	}
	s.metrics.items.WithLabelValues("decrypt", "ok").Add(float64(len(items) - failed))
	s.metrics.items.WithLabelValues("decrypt", "error").Add(float64(failed))
	if !batch {
		if errs[0] != nil {
			s.fail(c, errs[0])
			return
		}
		c.JSON(http.StatusOK, apiv1.DecryptResponse{Plaintext: nonNil(results[0].Plaintext), Key: lastKey, Version: lastVersion})
		return
	}
	c.JSON(http.StatusOK, apiv1.DecryptResponse{Batch: results})
}

// isDecisionOrCrypto reports whether err was already audited with its key.
func isDecisionOrCrypto(err error) bool {
	e := toError(err)
	return e.Code != apiv1.CodeInvalidCiphertext
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
