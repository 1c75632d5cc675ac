// Package headeronly is a Traefik plugin that reads Authorization and
// compares "Bearer ", then calls the next handler: the least any bearer
// check can cost under Yaegi, the benchmarks' floor for the plugin.
package headeronly

import (
	"context"
	"net/http"
)

// Config is empty.
type Config struct{}

// CreateConfig returns an empty configuration.
func CreateConfig() *Config { return &Config{} }

type headerOnly struct {
	next http.Handler
}

// New returns the handler.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &headerOnly{next: next}, nil
}

func (h *headerOnly) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if auth := req.Header["Authorization"]; len(auth) == 1 && len(auth[0]) > 7 && auth[0][:7] == "Bearer " {
		h.next.ServeHTTP(rw, req)
		return
	}
	h.next.ServeHTTP(rw, req)
}
