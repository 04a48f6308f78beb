package fabricid

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// NodeOUs is an MSP's NodeOU classification, as its config.yaml NodeOUs
// section enables it: a certificate's role is the one OU of its subject
// that names a role identifier.
//
//	node_ous: {enable: true}                        # client, peer, admin, orderer; creators client or admin
//	node_ous: {enable: true, roles: [client]}       # only clients may be creators
type NodeOUs struct {
	Enable bool `yaml:"enable"`
	// The OU identifiers of each role; empty means the role's name, as
	// cryptogen and fabric-ca write them.
	ClientOU  string `yaml:"client_ou"`
	PeerOU    string `yaml:"peer_ou"`
	AdminOU   string `yaml:"admin_ou"`
	OrdererOU string `yaml:"orderer_ou"`
	// Roles are the roles accepted as transaction creators; empty means
	// client and admin (the Writers of Fabric's default channel policies).
	Roles []string `yaml:"roles"`
}

// Role names.
const (
	RoleClient  = "client"
	RolePeer    = "peer"
	RoleAdmin   = "admin"
	RoleOrderer = "orderer"
)

func (n *NodeOUs) identifiers() [4][2]string {
	or := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	return [4][2]string{
		{RoleClient, or(n.ClientOU, RoleClient)},
		{RolePeer, or(n.PeerOU, RolePeer)},
		{RoleAdmin, or(n.AdminOU, RoleAdmin)},
		{RoleOrderer, or(n.OrdererOU, RoleOrderer)},
	}
}

func (n *NodeOUs) accepted() []string {
	if len(n.Roles) == 0 {
		return []string{RoleClient, RoleAdmin}
	}
	return n.Roles
}

// check validates the configuration.
func (n *NodeOUs) check() error {
	if n == nil || !n.Enable {
		return nil
	}
	for _, r := range n.accepted() {
		if r != RoleClient && r != RolePeer && r != RoleAdmin && r != RoleOrderer {
			return fmt.Errorf("node_ous: unknown role %s (want client, peer, admin or orderer)", quote(r))
		}
	}
	seen := map[string]bool{}
	for _, id := range n.identifiers() {
		if seen[id[1]] {
			return fmt.Errorf("node_ous: OU identifier %s names two roles", quote(id[1]))
		}
		seen[id[1]] = true
	}
	return nil
}

// role returns cert's role, or "" when NodeOUs are off.
func (n *NodeOUs) role(cert *x509.Certificate) (string, error) {
	if n == nil || !n.Enable {
		return "", nil
	}
	var roles []string
	for _, ou := range cert.Subject.OrganizationalUnit {
		for _, id := range n.identifiers() {
			if ou == id[1] {
				roles = append(roles, id[0])
			}
		}
	}
	switch {
	case len(roles) == 0:
		return "", fmt.Errorf("the certificate has no OU naming a role (client, peer, admin, orderer); OUs: %s", quote(strings.Join(cert.Subject.OrganizationalUnit, ",")))
	case len(roles) > 1:
		return "", fmt.Errorf("the certificate names more than one role: %s", strings.Join(roles, ", "))
	case !slices.Contains(n.accepted(), roles[0]):
		return "", fmt.Errorf("role %s is not accepted as a transaction creator (accepted: %s)", roles[0], strings.Join(n.accepted(), ", "))
	}
	return roles[0], nil
}

// LoadCRLs reads the PEM "X509 CRL" blocks of files. Each CRL must be
// signed by one of cas, the MSP's CA certificates: a CRL that no CA of the
// MSP signed is an error, not silently ignored.
func LoadCRLs(files []string, cas []*x509.Certificate) ([]*x509.RevocationList, error) {
	var out []*x509.RevocationList
	err := eachPEM(files, "X509 CRL", "CRL", "PEM X509 CRL", func(f string, der []byte) error {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return fmt.Errorf("CRL file %s: %w", quote(f), err)
		}
		for _, ca := range cas {
			if crl.CheckSignatureFrom(ca) == nil {
				out = append(out, crl)
				return nil
			}
		}
		return fmt.Errorf("CRL file %s: the CRL of %s is not signed by a CA of the MSP", quote(f), quote(crl.Issuer.String()))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// revoked reports whether a CRL signed by cert's issuer (in one of its
// verified chains) lists cert's serial number. The serial is looked up
// first, so the signature is checked only on a hit.
func revoked(crls []*x509.RevocationList, cert *x509.Certificate, chains [][]*x509.Certificate) bool {
	for _, crl := range crls {
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber == nil || e.SerialNumber.Cmp(cert.SerialNumber) != 0 {
				continue
			}
			for _, ch := range chains {
				if len(ch) > 1 && crl.CheckSignatureFrom(ch[1]) == nil {
					return true
				}
			}
		}
	}
	return false
}
