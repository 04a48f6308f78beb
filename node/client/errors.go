package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/keymesh/keymesh/node/apiv1"
)

// APIError is a response with a non-2xx status. Code is one of the apiv1.Code*
// constants; Message is the server's explanation, meant for people.
//
// When the body is not a keymesh error (a proxy's error page, say), Code is
// derived from the status (404 gives apiv1.CodeNotFound, 503
// apiv1.CodeUnavailable, …; a status without a code gives "") and Message
// holds the start of the body, quoted.
type APIError struct {
	Status  int    // the HTTP status
	Code    string // stable, for programs: apiv1.CodeNotFound, …
	Message string // for people
}

// Error returns "code: message".
func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = fmt.Sprintf("HTTP %d", e.Status)
	}
	if e.Message == "" {
		return code
	}
	return code + ": " + e.Message
}

// Is makes errors.Is(err, ErrNotFound) (and the other Err* values) true for
// an *APIError with that code.
func (e *APIError) Is(target error) bool {
	c, ok := target.(codeError)
	return ok && e.Code != "" && string(c) == e.Code
}

// codeError is the type of the Err* values: an error code alone.
type codeError string

func (c codeError) Error() string { return "keymesh: " + string(c) }

// Errors to branch on with errors.Is, one per apiv1 error code. An *APIError
// is each of them whose code it carries; ErrTooLarge also covers a request
// the client refused to send because its body is over apiv1.MaxBodyBytes.
var (
	ErrInvalidRequest    error = codeError(apiv1.CodeInvalidRequest)
	ErrInvalidCiphertext error = codeError(apiv1.CodeInvalidCiphertext)
	ErrDecryptionFailed  error = codeError(apiv1.CodeDecryptionFailed)
	ErrUnauthenticated   error = codeError(apiv1.CodeUnauthenticated)
	ErrForbidden         error = codeError(apiv1.CodeForbidden)
	ErrNotGranted        error = codeError(apiv1.CodeNotGranted)
	ErrFIPSUnsupported   error = codeError(apiv1.CodeFIPSUnsupported)
	ErrNotFound          error = codeError(apiv1.CodeNotFound)
	ErrConflict          error = codeError(apiv1.CodeConflict)
	ErrKeyNotUsable      error = codeError(apiv1.CodeKeyNotUsable)
	ErrKeyDestroyed      error = codeError(apiv1.CodeKeyDestroyed)
	ErrTooLarge          error = codeError(apiv1.CodeTooLarge)
	ErrUnavailable       error = codeError(apiv1.CodeUnavailable)
	ErrNoSpace           error = codeError(apiv1.CodeNoSpace)
	ErrInternal          error = codeError(apiv1.CodeInternal)
	ErrInvalidCreator    error = codeError(apiv1.CodeInvalidCreator)
)

// ErrResponseTooLarge is returned when a response body is over
// MaxResponseBytes. It is a client-side condition, not an API error code.
var ErrResponseTooLarge = errors.New("client: response body too large")

// ErrInvalidName is returned, before any request is sent, for a key name that
// is not "<namespace>/<name>" or a token id that cannot be a path segment.
var ErrInvalidName = errors.New("client: invalid name")

// IsCode reports whether err is, or wraps, an *APIError with the given
// apiv1 error code (or the client's own refusal to send an over-large body,
// for apiv1.CodeTooLarge).
func IsCode(err error, code string) bool {
	return code != "" && errors.Is(err, codeError(code))
}

// Code returns the apiv1 error code of err, or "" when err carries none
// (nil, a network error, a decoding error).
func Code(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	var ce codeError
	if errors.As(err, &ce) {
		return string(ce)
	}
	return ""
}

// statusCodes gives the code of a failed response whose body names none.
// Statuses that several codes share (400, 403, 409) map to the most general.
var statusCodes = map[int]string{
	http.StatusBadRequest:            apiv1.CodeInvalidRequest,
	http.StatusUnauthorized:          apiv1.CodeUnauthenticated,
	http.StatusForbidden:             apiv1.CodeForbidden,
	http.StatusNotFound:              apiv1.CodeNotFound,
	http.StatusConflict:              apiv1.CodeConflict,
	http.StatusGone:                  apiv1.CodeKeyDestroyed,
	http.StatusRequestEntityTooLarge: apiv1.CodeTooLarge,
	http.StatusInternalServerError:   apiv1.CodeInternal,
	http.StatusServiceUnavailable:    apiv1.CodeUnavailable,
	http.StatusInsufficientStorage:   apiv1.CodeNoSpace,
}

// decodeError turns a failed response into an *APIError, reading at most
// maxErrorBytes of its body.
func decodeError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes)) // a truncated body is still worth a look
	var er apiv1.ErrorResponse
	if json.Unmarshal(data, &er) == nil && er.Error.Code != "" {
		e.Code = er.Error.Code
		e.Message = er.Error.Message
		return e
	}
	e.Code = statusCodes[resp.StatusCode]
	e.Message = http.StatusText(resp.StatusCode)
	// /readyz answers 503 with an apiv1.Health body.
	var h apiv1.Health
	if json.Unmarshal(data, &h) == nil && h.Status != "" && len(h.Status) <= 64 {
		e.Message += ": " + bodySnippet([]byte(h.Status))
		return e
	}
	if snippet := bodySnippet(data); snippet != "" {
		e.Message += ": " + snippet
	}
	return e
}

// bodySnippet returns the start of a non-keymesh error body, whitespace
// collapsed and quoted, so that a proxy's page cannot put control characters
// or a wall of HTML into an error message.
func bodySnippet(data []byte) string {
	const maxRunes = 200
	s := strings.Join(strings.FieldsFunc(string(data), unicode.IsSpace), " ")
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > maxRunes {
		s = string(r[:maxRunes]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
