package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func TestWrite(t *testing.T) {
	// given a certificate and key written by Write
	certFile, keyFile, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// when they are loaded, then they pair, and name 127.0.0.1
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}
