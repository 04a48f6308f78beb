package node

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/keymesh/keymesh/kmip"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/vault/envelope"
)

// KMIPConfig configures the KMIP server (package kmip): off unless Listen
// is set. YAML:
//
//	kmip:
//	  listen: 0.0.0.0:5696
//	  cert: /etc/keymesh/kmip-server.pem
//	  key: /etc/keymesh/kmip-server.key
//	  client_cas: [/etc/keymesh/kmip-clients-ca.pem]
//	  namespace: kmip
//
// Environment: KEYMESH_KMIP_LISTEN, KEYMESH_KMIP_CERT, KEYMESH_KMIP_KEY,
// KEYMESH_KMIP_CLIENT_CAS (comma-separated), KEYMESH_KMIP_NAMESPACE.
type KMIPConfig struct {
	// Listen is the KMIP address (5696 by convention).
	Listen string `yaml:"listen"`
	// Cert and Key are the server's TLS certificate and key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCAs are the CA certificate files (PEM) that KMIP client
	// certificates must chain to. They are trusted for KMIP only.
	ClientCAs []string `yaml:"client_cas"`
	// Namespace is where keys created over KMIP are named (default
	// "kmip"); on a mesh node the genesis must give it to this node's org.
	Namespace string `yaml:"namespace"`
	// MaxKeysPerClient bounds the keys one KMIP client (party) may create
	// (default 10,000): every authenticated client may create keys, and
	// each costs events at every node of the org.
	MaxKeysPerClient int `yaml:"max_keys_per_client"`
}

// DefaultKMIPMaxKeysPerClient is the default of KMIPConfig.MaxKeysPerClient.
const DefaultKMIPMaxKeysPerClient = 10000

// DefaultKMIPNamespace is the default namespace of KMIP-created keys.
const DefaultKMIPNamespace = "kmip"

func (c *KMIPConfig) defaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultKMIPNamespace
	}
	if c.MaxKeysPerClient <= 0 {
		c.MaxKeysPerClient = DefaultKMIPMaxKeysPerClient
	}
}

func (c *KMIPConfig) validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("node: config: kmip listen address %q: %w", c.Listen, err)
	}
	if c.Cert == "" || c.Key == "" {
		return errors.New("node: config: kmip needs a server certificate and key (kmip.cert, kmip.key)")
	}
	if len(c.ClientCAs) == 0 {
		return errors.New("node: config: kmip needs the CAs its clients' certificates chain to (kmip.client_cas)")
	}
	ns := c.Namespace
	if ns == "" {
		ns = DefaultKMIPNamespace
	}
	if err := envelope.CheckKeyName(ns + "/x"); err != nil || strings.Contains(ns, "/") {
		return fmt.Errorf("node: config: kmip namespace %q: want one key-name segment", ns)
	}
	return nil
}

func (c *KMIPConfig) loadEnv(getenv func(string) string) {
	for k, p := range map[string]*string{
		"KEYMESH_KMIP_LISTEN": &c.Listen, "KEYMESH_KMIP_CERT": &c.Cert,
		"KEYMESH_KMIP_KEY": &c.Key, "KEYMESH_KMIP_NAMESPACE": &c.Namespace,
	} {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("KEYMESH_KMIP_CLIENT_CAS"); v != "" {
		c.ClientCAs = nil
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				c.ClientCAs = append(c.ClientCAs, f)
			}
		}
	}
}

// kmipFront is the node's KMIP server and its listener.
type kmipFront struct {
	srv *kmip.Server
	ln  net.Listener
}

// openKMIP builds the KMIP server when it is configured.
func (n *Node) openKMIP() error {
	c := n.cfg.KMIP
	c.defaults()
	if c.Listen == "" {
		return nil
	}
	n.cfg.KMIP.Namespace = c.Namespace
	if owner, ok := n.mesh.member.Log().Genesis().KeyOwner(c.Namespace + "/x"); !ok || owner != n.id.Org {
		return fmt.Errorf("node: kmip namespace %q does not belong to %s in the genesis", c.Namespace, n.id.Org)
	}
	tc, err := kmip.TLSConfig(c.Cert, c.Key, c.ClientCAs, n.cfg.FIPS)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	b := &kmipBackend{core: n.core, member: n.mesh.member, vault: n.vault, org: n.id.Org, ns: c.Namespace, maxKeys: c.MaxKeysPerClient}
	srv, err := kmip.New(kmip.Config{Backend: b, TLS: tc, Logger: n.logger.With("component", "kmip")})
	if err != nil {
		return err
	}
	n.kmip = &kmipFront{srv: srv}
	return nil
}

// listenKMIP opens the KMIP listener.
func (n *Node) listenKMIP() error {
	if n.kmip == nil || n.kmip.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.KMIP.Listen)
	if err != nil {
		return fmt.Errorf("node: kmip listen: %w", err)
	}
	n.kmip.ln = ln
	return nil
}

// serveKMIP serves KMIP in the background.
func (n *Node) serveKMIP() {
	if n.kmip == nil || n.kmip.ln == nil {
		return
	}
	go func() {
		if err := n.kmip.srv.Serve(n.kmip.ln); err != nil {
			n.logger.Error("kmip server stopped", "err", err)
		}
	}()
}

func (n *Node) closeKMIP() {
	if n.kmip == nil {
		return
	}
	if n.kmip.ln != nil {
		n.kmip.ln.Close()
	}
	n.kmip.srv.Close()
}

// KMIPAddr returns the KMIP listener's address, or "" when KMIP is off.
func (n *Node) KMIPAddr() string {
	if n.kmip == nil || n.kmip.ln == nil {
		return ""
	}
	return n.kmip.ln.Addr().String()
}

// kmipObject describes the KMIP side of key name, as the network agrees on
// it (listings: keymesh keys), or nil.
func (n *Node) kmipObject(name string) *kms.KMIPObject {
	a, ok := n.mesh.member.KMIPAttrs(name)
	if !ok {
		return nil
	}
	attrs := make([]kmip.Attr, 0, len(a.Attrs))
	for _, at := range a.Attrs {
		attrs = append(attrs, kmip.Attr{Name: at.Name, Index: at.Index, TTLV: at.TTLV})
	}
	return &kms.KMIPObject{UID: name, Owner: string(a.Owner), Names: kmip.Names(attrs)}
}
