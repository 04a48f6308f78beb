// Package fabricidtest makes throwaway Fabric-style certificate authorities
// and client identities for tests: a CA per MSP, client certificates it
// issues, and the marshalled msp.SerializedIdentity a chaincode stub
// returns from GetCreator. Keys are ECDSA P-256, as Fabric's cryptogen and
// fabric-ca make them. Nothing here is fit for production.
package fabricidtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
)

// CA is a self-signed root CA for one MSP.
type CA struct {
	MSPID  string
	Cert   *x509.Certificate
	PEM    []byte
	key    *ecdsa.PrivateKey
	serial atomic.Int64
}

// NewCA makes a root CA for mspID, valid from an hour ago for ten years.
func NewCA(mspID string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fabricidtest: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ca." + mspID, Organization: []string{mspID}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("fabricidtest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{MSPID: mspID, Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.serial.Store(1)
	return ca, nil
}

// WriteFile writes the CA certificate as PEM to dir/<MSPID>-ca.pem and
// returns the path.
func (ca *CA) WriteFile(dir string) (string, error) {
	p := filepath.Join(dir, ca.MSPID+"-ca.pem")
	if err := os.WriteFile(p, ca.PEM, 0o600); err != nil {
		return "", fmt.Errorf("fabricidtest: %w", err)
	}
	return p, nil
}

// Identity is a client identity issued by a CA.
type Identity struct {
	MSPID   string
	Cert    *x509.Certificate
	CertPEM []byte
	Key     *ecdsa.PrivateKey
}

// Issue makes a client certificate for subject, valid from an hour ago
// until notAfter (a year from now when zero), with the client-auth
// extended key usage.
func (ca *CA) Issue(subject pkix.Name, notAfter time.Time) (*Identity, error) {
	return ca.issue(subject, time.Now().Add(-time.Hour), notAfter)
}

// IssueExpired makes a client certificate that expired a minute ago.
func (ca *CA) IssueExpired(subject pkix.Name) (*Identity, error) {
	return ca.issue(subject, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Minute))
}

func (ca *CA) issue(subject pkix.Name, notBefore, notAfter time.Time) (*Identity, error) {
	if notAfter.IsZero() {
		notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	return ca.issueTmpl(subject, notBefore, notAfter, x509.KeyUsageDigitalSignature, false)
}

func (ca *CA) issueTmpl(subject pkix.Name, notBefore, notAfter time.Time, ku x509.KeyUsage, isCA bool) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fabricidtest: client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     ku,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("fabricidtest: client certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{MSPID: ca.MSPID, Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Creator returns the marshalled msp.SerializedIdentity of id, as
// stub.GetCreator returns it.
func (id *Identity) Creator() []byte {
	return Creator(id.MSPID, id.CertPEM)
}

// Creator marshals an msp.SerializedIdentity of mspID and idBytes.
func Creator(mspID string, idBytes []byte) []byte {
	b, err := proto.Marshal(&msp.SerializedIdentity{Mspid: mspID, IdBytes: idBytes})
	if err != nil {
		panic("fabricidtest: marshal SerializedIdentity: " + err.Error())
	}
	return b
}

// Party returns the fabric: party string keymesh derives for id.
func (id *Identity) Party() string {
	return "fabric:" + id.MSPID + "/" + id.Cert.Subject.String()
}
