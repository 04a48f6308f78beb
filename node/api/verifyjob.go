package api

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/node/apiv1"
)

// verifyJobs runs audit verifications in the background, one at a time:
// POST /v1/audit/verify answers within the request, which at ~2.6 µs per
// entry meets the server's timeouts near 10M entries; a job has no such
// bound and reports its progress. The latest job is kept until the next
// one starts.
type verifyJobs struct {
	mu   sync.Mutex
	seq  uint64
	last *verifyJob
}

type verifyJob struct {
	id      string
	started time.Time
	checked atomic.Uint64
	done    chan struct{}
	// Set before done is closed.
	finished time.Time
	result   *apiv1.AuditVerify
	err      string
}

func (j *verifyJob) status() apiv1.AuditVerifyJob {
	out := apiv1.AuditVerifyJob{ID: j.id, State: "running", Checked: j.checked.Load(), StartedAt: j.started}
	select {
	case <-j.done:
		f := j.finished
		out.FinishedAt, out.Result, out.Error = &f, j.result, j.err
		out.State = "done"
		if j.err != "" {
			out.State = "failed"
		}
	default:
	}
	return out
}

// startVerifyJob starts a verification, or answers the one running.
func (s *Server) startVerifyJob(c *gin.Context) {
	s.verify.mu.Lock()
	if j := s.verify.last; j != nil {
		select {
		case <-j.done:
		default:
			s.verify.mu.Unlock()
			c.JSON(http.StatusAccepted, j.status())
			return
		}
	}
	s.verify.seq++
	j := &verifyJob{id: strconv.FormatUint(s.verify.seq, 10), started: time.Now().UTC(), done: make(chan struct{})}
	s.verify.last = j
	s.verify.mu.Unlock()
	go func() {
		rep, err := s.cfg.Audit.VerifyProgress(func(n uint64) { j.checked.Store(n) })
		var ve *audit.VerifyError
		switch {
		case err == nil:
			j.checked.Store(rep.Entries)
			j.result = &apiv1.AuditVerify{OK: true, Entries: rep.Entries, Head: hex.EncodeToString(rep.Head[:])}
		case asVerify(err, &ve):
			j.result = &apiv1.AuditVerify{OK: false, Seq: ve.Seq, Reason: ve.Reason}
		default:
			j.err = toError(err).Message
		}
		j.finished = time.Now().UTC()
		close(j.done)
	}()
	c.JSON(http.StatusAccepted, j.status())
}

func (s *Server) getVerifyJob(c *gin.Context) {
	s.verify.mu.Lock()
	j := s.verify.last
	s.verify.mu.Unlock()
	if j == nil || j.id != c.Param("id") {
		s.fail(c, &Error{Status: http.StatusNotFound, Code: apiv1.CodeNotFound, Message: "no such verification job (only the latest is kept)"})
		return
	}
	c.JSON(http.StatusOK, j.status())
}
