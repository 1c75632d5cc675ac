package tokenrevocation

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// errorBody encodes the identity service's error shape:
// {"error": code, "errorDescription": text}. Callers never put token
// material in either field.
func errorBody(code, description string) []byte {
	body, err := json.Marshal(map[string]string{"error": code, "errorDescription": description})
	if err != nil {
		return []byte(`{"error":"server_error","errorDescription":"internal error"}`)
	}
	return body
}

// revokedBody is the body sent for a revoked token, encoded once.
var revokedBody = errorBody("invalid_token", "The access token has been revoked")

// writeError answers with a JSON error in the identity service's shape.
func writeError(rw http.ResponseWriter, status int, code, description string) {
	writeJSON(rw, status, errorBody(code, description))
}

// writeJSON writes every JSON response the middleware makes itself. Responses
// are never cached (RFC 6749 §5.1, RFC 6750 §3).
func writeJSON(rw http.ResponseWriter, status int, body []byte) {
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// passWriter is what the middleware's response recorders share: they pass
// the upstream's response through to rw unchanged.
type passWriter struct {
	rw http.ResponseWriter
}

// Header returns the underlying writer's header map.
func (p *passWriter) Header() http.Header {
	return p.rw.Header()
}

// Flush passes a flush on when the underlying writer supports it.
func (p *passWriter) Flush() {
	if f, ok := p.rw.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (p *passWriter) Unwrap() http.ResponseWriter {
	return p.rw
}
