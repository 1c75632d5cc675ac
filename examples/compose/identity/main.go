//go:build composeidentity

// Command identity serves the identity-service stand-in of the e2e suite
// (e2e/fixtures) for the Compose quick start: the token endpoint
// (client_credentials and refresh_token grants, JWT access tokens) and the
// RFC 7009 revoke endpoint, on the repository's default paths.
//
// It is built inside the e2e module (the Dockerfile beside it copies it to
// e2e/cmd/compose-identity), so it carries a build tag that keeps it out of
// the plugin module's own builds:
//
//	go build -tags composeidentity -o identity ./cmd/compose-identity
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edgerevoke/tokenrevocation/e2e/fixtures"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	client := flag.String("client", "demo-client:demo-secret", "client credentials, id:secret")
	accessTTL := flag.Duration("access-ttl", time.Hour, "lifetime of the access tokens issued")
	flag.Parse()

	id, secret, ok := strings.Cut(*client, ":")
	if !ok || id == "" || secret == "" {
		log.Fatalf("identity: -client must be id:secret, got %q", *client)
	}
	srv, err := fixtures.StartIdentity(*addr, map[string]string{id: secret}, *accessTTL)
	if err != nil {
		log.Fatalf("identity: %v", err)
	}
	log.Printf("identity stand-in listening on %s: POST %s, POST %s (client %s)",
		srv.Addr(), fixtures.TokenPath, fixtures.RevokePath, id)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	if err := srv.Close(); err != nil {
		log.Printf("identity: close: %v", err)
	}
}
