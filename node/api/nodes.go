package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/node/apiv1"
)

// Mesh is a node's membership of a network: its identity for
// registration, the registered nodes, and the publication of admin-signed
// node records and deregistrations. Every node has one (a node alone is a
// network of one).
type Mesh interface {
	Identity() member.Identity
	// Register publishes an admin-signed node record (JSON).
	Register(record []byte) error
	// Deregister publishes an admin-signed deregistration (JSON).
	Deregister(d []byte) error
	Nodes() []member.NodeInfo
	Status() member.Status
	// StaleOrgs lists the orgs not heard from within the staleness bound.
	StaleOrgs() []string
}

func identityJSON(id member.Identity) apiv1.NodeIdentity {
	return apiv1.NodeIdentity{Org: id.Org, NetworkID: id.NetworkID, PeerID: id.PeerID, SignKey: id.SignKey,
		KEMKey: id.KEMKey, Mesh: true, Addrs: id.Addrs, Registered: id.Registered}
}

func nodesJSON(ns []member.NodeInfo) apiv1.NetworkNodeList {
	out := apiv1.NetworkNodeList{Nodes: make([]apiv1.NetworkNode, 0, len(ns))}
	for _, n := range ns {
		out.Nodes = append(out.Nodes, apiv1.NetworkNode{Org: n.Org, PeerID: n.PeerID, SignKey: n.SignKey, Addrs: n.Addrs,
			NotAfter: n.NotAfter, Deregistered: n.Deregistered, LastSeq: n.LastSeq, Events: n.Events, Tainted: n.Tainted,
			Self: n.Self, Connected: n.Connected, LastSeen: n.LastSeen})
	}
	return out
}

func networkStatusJSON(st member.Status) apiv1.NetworkStatus {
	out := apiv1.NetworkStatus{Peers: st.Peers, Events: st.Events, Pending: st.Pending, LastSync: st.LastSync, Nodes: st.Nodes,
		Dropped: st.Dropped, Addrs: st.Addrs, Staleness: st.Staleness.String(), Orgs: []apiv1.OrgFreshness{}}
	for _, o := range st.Orgs {
		out.Orgs = append(out.Orgs, apiv1.OrgFreshness{Org: o.Org, LastHeard: o.LastHeard, Stale: o.Stale})
	}
	return out
}

func (s *Server) nodeIdentity(c *gin.Context) {
	c.JSON(http.StatusOK, identityJSON(s.cfg.Mesh.Identity()))
}

func (s *Server) listNodes(c *gin.Context) {
	c.JSON(http.StatusOK, nodesJSON(s.cfg.Mesh.Nodes()))
}

func (s *Server) registerNode(c *gin.Context) {
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
		s.adminFailed(c, "node.register", err)
		return
	}
	s.adminDone(c, "node.register", "", http.StatusOK, identityJSON(s.cfg.Mesh.Identity()))
}

func (s *Server) deregisterNode(c *gin.Context) {
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
		s.adminFailed(c, "node.deregister", err)
		return
	}
	s.adminDone(c, "node.deregister", "", http.StatusOK, nodesJSON(s.cfg.Mesh.Nodes()))
}
