// Package noop is a Traefik plugin that only calls the next handler: the
// benchmarks' measure of what any Yaegi plugin costs.
package noop

import (
	"context"
	"net/http"
)

// Config is empty.
type Config struct{}

// CreateConfig returns an empty configuration.
func CreateConfig() *Config { return &Config{} }

type noop struct{ next http.Handler }

// New returns a handler that calls next.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &noop{next: next}, nil
}

func (n *noop) ServeHTTP(rw http.ResponseWriter, req *http.Request) { n.next.ServeHTTP(rw, req) }
