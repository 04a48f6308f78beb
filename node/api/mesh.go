package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/node/apiv1"
)

// Mesh is a node's membership of a network: its identity for
// registration, the registered nodes, and the publication of admin-signed
// node records and deregistrations. A standalone node has none.
type Mesh interface {
	Identity() apiv1.NodeIdentity
	// Register publishes an admin-signed node record (JSON).
	Register(record []byte) error
	// Deregister publishes an admin-signed deregistration (JSON).
	Deregister(d []byte) error
	Nodes() []apiv1.MeshNode
	Status() apiv1.MeshStatus
	// StaleOrgs lists the orgs not heard from within the staleness bound.
	StaleOrgs() []string
}

// ErrNotMesh answers mesh routes on a standalone node.
var errNotMesh = &Error{Status: http.StatusConflict, Code: apiv1.CodeConflict, Message: "this node belongs to no network (it was initialised without a genesis)"}

// ErrRegistration is wrapped by Mesh implementations for a record or
// deregistration that is refused (bad signature, another network, not an
// admin of the org).
var ErrRegistration = errors.New("registration refused")

func (s *Server) nodeIdentity(c *gin.Context) {
	if s.cfg.Mesh == nil {
		s.fail(c, errNotMesh)
		return
	}
	c.JSON(http.StatusOK, s.cfg.Mesh.Identity())
}

func (s *Server) listNodes(c *gin.Context) {
	if s.cfg.Mesh == nil {
		s.fail(c, errNotMesh)
		return
	}
	c.JSON(http.StatusOK, apiv1.MeshNodeList{Nodes: s.cfg.Mesh.Nodes()})
}

func (s *Server) registerNode(c *gin.Context) {
	if s.cfg.Mesh == nil {
		s.fail(c, errNotMesh)
		return
	}
	var req apiv1.RegisterRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Record) == 0 {
		s.fail(c, badRequest(`"record" is required`))
		return
	}
	if err := s.cfg.Mesh.Register(req.Record); err != nil {
		s.adminFailed(c, "node.register", "", err)
		return
	}
	s.adminDone(c, "node.register", "", 0, "", http.StatusOK, s.cfg.Mesh.Identity())
}

func (s *Server) deregisterNode(c *gin.Context) {
	if s.cfg.Mesh == nil {
		s.fail(c, errNotMesh)
		return
	}
	var req apiv1.DeregisterRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Deregister) == 0 {
		s.fail(c, badRequest(`"deregister" is required`))
		return
	}
	if err := s.cfg.Mesh.Deregister(req.Deregister); err != nil {
		s.adminFailed(c, "node.deregister", "", err)
		return
	}
	s.adminDone(c, "node.deregister", "", 0, "", http.StatusOK, apiv1.MeshNodeList{Nodes: s.cfg.Mesh.Nodes()})
}
