package tokenrevocation

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The admin API's bulk and rule operations: export and import of the
// revocations held, and logout rules added by hand (admin.go).

// adminExport streams every live revocation as NDJSON.
func (m *middleware) adminExport(rw http.ResponseWriter) {
	rw.Header().Set("Content-Type", "application/x-ndjson")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusOK)
	w := bufio.NewWriterSize(rw, 64<<10)
	m.list.store.Each(func(digest []byte, expiry int64) {
		fmt.Fprintf(w, `{"digest":"%s","expiresAt":"%s"}`+"\n", hex.EncodeToString(digest), time.Unix(0, expiry).UTC().Format(time.RFC3339Nano))
	})
	_ = w.Flush()
}

// adminImport records each NDJSON line as an admin revocation.
func (m *middleware) adminImport(req *http.Request) (int, []byte, string) {
	d := m.list
	scanner := bufio.NewScanner(req.Body)
	scanner.Buffer(make([]byte, maxImportLine), maxImportLine)
	imported, skipped, refused, line := 0, 0, 0, 0
	limit := d.opts.now().Add(m.settings.maxLifetime)
	for scanner.Scan() {
		line++
		text := strings.TrimSpace(scanner.Text())
		if text == "" {
			continue
		}
		var in adminRequest
		if json.Unmarshal([]byte(text), &in) != nil {
			return http.StatusBadRequest, errorBody("invalid_request", fmt.Sprintf("line %d: want {\"digest\" or \"token\":...,\"expiresAt\":...}", line)), ""
		}
		digest, err := in.digest()
		expiry, terr := time.Parse(time.RFC3339Nano, in.ExpiresAt)
		if err != nil || terr != nil {
			return http.StatusBadRequest, errorBody("invalid_request", fmt.Sprintf("line %d: want {\"digest\" or \"token\":...,\"expiresAt\":...}", line)), ""
		}
		if expiry.After(limit) {
			// Longer than the store holds: refused and counted, never cut.
			refused++
			continue
		}
		if !expiry.After(d.opts.now()) {
			skipped++
			continue
		}
		key := ""
		if in.Token != "" {
			key = keyOf(in.Token)
		}
		_, recorded, err := d.record(&digest, key, expiry, -1, sourceAdmin, nil)
		if err != nil {
			log.Printf("tokenrevocation: ERROR an imported revocation was enforced but not persisted: %v", err)
		}
		if !recorded {
			// Already held at least as long.
			skipped++
			continue
		}
		imported++
	}
	if err := scanner.Err(); err != nil {
		return http.StatusBadRequest, errorBody("invalid_request", fmt.Sprintf("after line %d: %v", line, err)), ""
	}
	return http.StatusOK, mustJSON(map[string]int{"imported": imported, "skipped": skipped, "refused": refused}), ""
}

// adminRule adds (POST) or deletes (DELETE) a session or subject rule,
// as a logout record: replicated, persisted and applied like one.
func (m *middleware) adminRule(req *http.Request, in *adminRequest) (int, []byte, string) {
	d := m.list
	rec := &record.Logout{}
	var digest [sha256.Size]byte
	claim := in.Claim
	switch {
	case in.SID != "" && in.Sub == "" && in.Digest == "":
		// One assignment each: Yaegi v0.16.1 loses the constant of
		// `claim, digest = "sid", sha256.Sum256(...)`.
		claim = "sid"
		digest = sha256.Sum256([]byte(in.SID))
	case in.Sub != "" && in.SID == "" && in.Digest == "":
		claim = "sub"
		digest = sha256.Sum256([]byte(in.Sub))
	case (claim == "sid" || claim == "sub") && len(in.Digest) == 2*sha256.Size && in.SID == "" && in.Sub == "":
		if _, err := hex.Decode(digest[:], []byte(strings.ToLower(in.Digest))); err != nil {
			return http.StatusBadRequest, errorBody("invalid_request", "digest must be 64 hex characters"), ""
		}
	default:
		return http.StatusBadRequest, errorBody("invalid_request", `give one of "sid", "sub", or "claim" (sid or sub) with "digest"`), ""
	}
	if claim == "sid" {
		rec.Flags = record.LogoutRuleSID | record.LogoutGrantsSID
		rec.SID = digest
	} else {
		rec.Flags = record.LogoutRuleSub | record.LogoutGrantsSub
		rec.Sub = digest
	}
	now := d.opts.now()
	rec.At = now.UnixNano()
	if in.LoggedOutAt != "" {
		t, err := time.Parse(time.RFC3339, in.LoggedOutAt)
		if err != nil {
			return http.StatusBadRequest, errorBody("invalid_request", "loggedOutAt must be an RFC 3339 time"), ""
		}
		rec.At = t.UnixNano()
	}
	ttl := m.settings.maxTTL
	if m.settings.logout != nil {
		ttl = m.settings.logout.ruleTTL
	}
	rec.Expiry = rec.At + int64(ttl)
	if in.ExpiresAt != "" || in.TTL != "" {
		expiry, err := m.adminExpiry(in)
		if err != nil {
			return http.StatusBadRequest, errorBody("invalid_request", err.Error()), ""
		}
		rec.Expiry = expiry.UnixNano()
	}
	if m.settings.logout != nil && m.settings.logout.includeOffline {
		rec.Flags |= record.LogoutOffline
	}
	// A jti of its own, so that the record's replay memory never matches a
	// provider's logout token.
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	rec.JTI = sha256.Sum256(append([]byte("admin\n"), nonce[:]...))
	if req.Method == http.MethodDelete {
		rec.Flags = rec.Flags&(record.LogoutRuleSID|record.LogoutRuleSub) | record.LogoutDelete
	}
	if err := d.logout(rec); err != nil {
		log.Printf("tokenrevocation: ERROR an admin rule change was applied but not persisted: %v", err)
	}
	prefix := hex.EncodeToString(digest[:4])
	out := map[string]interface{}{"claim": claim, "digest": hex.EncodeToString(digest[:]), "deleted": req.Method == http.MethodDelete}
	if req.Method != http.MethodDelete {
		out["loggedOutAt"] = time.Unix(0, rec.At).UTC().Format(time.RFC3339)
		out["expiresAt"] = time.Unix(0, rec.Expiry).UTC().Format(time.RFC3339)
	}
	return http.StatusOK, mustJSON(out), prefix
}
