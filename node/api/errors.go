package api

import (
	"errors"
	"net/http"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Error is an error with the status, code and message a client sees. The
// cause, if any, is for logs only.
type Error struct {
	Status  int
	Code    string
	Message string
	Cause   error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Cause }

func badRequest(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: apiv1.CodeInvalidRequest, Message: msg}
}

func tooLarge(msg string) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: apiv1.CodeTooLarge, Message: msg}
}

var errForbiddenAdmin = &Error{Status: http.StatusForbidden, Code: apiv1.CodeForbidden, Message: "this operation needs an admin token"}

// mapping is the one place where domain errors become HTTP statuses and
// stable codes. Domain error messages carry only public values (key names,
// parties, states), never secrets, so they are shown as they are.
var mapping = []struct {
	err    error
	status int
	code   string
}{
	{token.ErrUnauthenticated, http.StatusUnauthorized, apiv1.CodeUnauthenticated},
	{fabricid.ErrInvalidCreator, http.StatusUnauthorized, apiv1.CodeInvalidCreator},
	{fabricid.ErrReplayFull, http.StatusServiceUnavailable, apiv1.CodeUnavailable},
	{fabricid.ErrEndorsementConflict, http.StatusConflict, apiv1.CodeConflict},
	{kms.ErrEndorsementRefused, http.StatusForbidden, apiv1.CodeForbidden},
	{policy.ErrNotGranted, http.StatusForbidden, apiv1.CodeNotGranted},
	{ErrFIPSUnsupported, http.StatusForbidden, apiv1.CodeFIPSUnsupported}, // fips.go: why 403
	{policy.ErrStalePolicy, http.StatusServiceUnavailable, apiv1.CodeStalePolicy},
	{vault.ErrKeyNotFound, http.StatusNotFound, apiv1.CodeNotFound},
	{token.ErrNotFound, http.StatusNotFound, apiv1.CodeNotFound},
	{token.ErrInvalid, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{audit.ErrInvalidEntry, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{vault.ErrKeyExists, http.StatusConflict, apiv1.CodeConflict},
	{vault.ErrInvalidTransition, http.StatusConflict, apiv1.CodeConflict},
	{policy.ErrConflict, http.StatusConflict, apiv1.CodeConflict},
	{vault.ErrKeyDestroyed, http.StatusGone, apiv1.CodeKeyDestroyed},
	{vault.ErrKeyNotUsable, http.StatusConflict, apiv1.CodeKeyNotUsable},
	{vault.ErrModeNotAllowed, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{vault.ErrInvalidRequest, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{envelope.ErrInvalidKeyName, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{envelope.ErrInvalidContext, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{envelope.ErrInvalidTxID, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{policy.ErrInvalidParty, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{policy.ErrInvalidGrant, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{envelope.ErrMalformed, http.StatusBadRequest, apiv1.CodeInvalidCiphertext},
	{envelope.ErrDecrypt, http.StatusBadRequest, apiv1.CodeDecryptionFailed},
	{envelope.ErrTooLarge, http.StatusRequestEntityTooLarge, apiv1.CodeTooLarge},
	// The audit log first: a request it cannot record fails closed with
	// 503, also when the cause is a full disk.
	{audit.ErrUnavailable, http.StatusServiceUnavailable, apiv1.CodeUnavailable},
	{kv.ErrNoSpace, http.StatusInsufficientStorage, apiv1.CodeNoSpace},
	{audit.ErrClosed, http.StatusServiceUnavailable, apiv1.CodeUnavailable},
	{audit.ErrTampered, http.StatusServiceUnavailable, apiv1.CodeUnavailable},
	{member.ErrNotOwner, http.StatusForbidden, apiv1.CodeForbidden},
	{member.ErrRegistration, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	{vault.ErrVersionNotHeld, http.StatusConflict, apiv1.CodeKeyNotUsable},
}

// toError maps any error to the error a client sees. Unknown errors become
// a generic 500 whose cause is logged but never shown.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range mapping {
		if errors.Is(err, m.err) {
			msg := err.Error()
			switch m.code {
			case apiv1.CodeUnauthenticated:
				msg = "missing or invalid token"
			case apiv1.CodeDecryptionFailed:
				msg = "decryption failed"
			case apiv1.CodeUnavailable:
				if !errors.Is(err, fabricid.ErrReplayFull) {
					msg = "the node cannot record this request in its audit log; refusing it"
				}
			case apiv1.CodeNoSpace:
				msg = "the node's disk is nearly full: changes are refused until space is freed; reads and decryption go on"
			}
			return &Error{Status: m.status, Code: m.code, Message: msg, Cause: err}
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: apiv1.CodeInternal, Message: "internal error", Cause: err}
}

// ErrorCode is the stable code a client would see for err (e.g.
// "not_granted"); the domain core records it as the reason of a refused
// change.
func ErrorCode(err error) string { return toError(err).Code }

func errorCode(err error) string { return toError(err).Code }

func (e *Error) body() apiv1.Error { return apiv1.Error{Code: e.Code, Message: e.Message} }

func asVerify(err error, target **audit.VerifyError) bool { return errors.As(err, target) }
