package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/keymesh/keymesh/node/apiv1"
)

// Request body budget. A body is read and decoded whole (up to
// apiv1.MaxBodyBytes), and decoding costs about three times its size while
// the request runs, so an authenticated caller without any grant could
// otherwise make the node hold hundreds of megabytes at once by sending
// many large bodies in parallel. The budget bounds the bytes of bodies
// being read and handled at once: a request whose body is larger than
// smallBody (by its Content-Length, or the maximum when it has none)
// reserves that many bytes before its handler runs and returns them when it
// ends; a request that cannot reserve within bodyWait gets 503 unavailable.
// Small bodies, the common case, never wait.
const (
	// DefaultBodyBudget is the default budget: eight maximal bodies.
	DefaultBodyBudget = 8 * apiv1.MaxBodyBytes
	smallBody         = 64 << 10
	bodyWait          = 5 * time.Second
)

var errBodiesBusy = &Error{Status: http.StatusServiceUnavailable, Code: apiv1.CodeUnavailable, Message: "too many large requests in flight; try again shortly"}

// bodyBudget is a weighted semaphore over body bytes that remembers its
// high-water mark (for tests and the metric).
type bodyBudget struct {
	sem   *semaphore.Weighted
	limit int64

	mu          sync.Mutex
	inUse, high int64
}

func newBodyBudget(limit int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(limit), limit: limit}
}

func (b *bodyBudget) acquire(ctx context.Context, n int64) bool {
	if err := b.sem.Acquire(ctx, n); err != nil {
		return false
	}
	b.mu.Lock()
	b.inUse += n
	b.high = max(b.high, b.inUse)
	b.mu.Unlock()
	return true
}

func (b *bodyBudget) release(n int64) {
	if n == 0 {
		return // a small body reserved nothing
	}
	b.mu.Lock()
	b.inUse -= n
	b.mu.Unlock()
	b.sem.Release(n)
}

// highWater returns the most body bytes ever reserved at once.
func (b *bodyBudget) highWater() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.high
}

// limitBodies reserves a large request's body bytes from the budget for
// the time its handler runs. It runs after authentication, so a caller
// without a token never holds any of the budget.
func (s *Server) limitBodies(c *gin.Context) {
	n, ok := s.reserveBody(c)
	if !ok {
		return
	}
	defer s.bodies.release(n)
	c.Next()
}

// reserveBody reserves the bytes of a large request's body, n (0 for a
// small body), to be released when its handler ends; or it answers 503 and
// reports false.
func (s *Server) reserveBody(c *gin.Context) (n int64, ok bool) {
	n = c.Request.ContentLength
	if n >= 0 && n <= smallBody {
		return 0, true
	}
	if n < 0 || n > apiv1.MaxBodyBytes {
		n = apiv1.MaxBodyBytes // bind reads no more than this
	}
	ctx, cancel := context.WithTimeout(c, bodyWait)
	ok = s.bodies.acquire(ctx, n)
	cancel()
	if !ok {
		s.fail(c, errBodiesBusy)
		return 0, false
	}
	return n, true
}
