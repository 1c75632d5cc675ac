package tokenrevocation

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/basicauth"
	"github.com/edgerevoke/tokenrevocation/internal/limit"
	"github.com/edgerevoke/tokenrevocation/internal/obs"
	"github.com/edgerevoke/tokenrevocation/internal/store"
)

// serveRevoke handles a POST to the revoke endpoint (RFC 7009). It checks the
// request, replays it byte for byte to the identity service, and records the
// token only when the service answers 2xx.
func (m *middleware) serveRevoke(rw http.ResponseWriter, req *http.Request) {
	s := m.settings
	form, token, ok := m.readFormWith(rw, req, "token")
	if !ok {
		return
	}
	hint, hinted := form["token_type_hint"]
	if hinted && hint[0] != "access_token" && hint[0] != "refresh_token" {
		writeError(rw, http.StatusBadRequest, "unsupported_token_type", "token_type_hint must be access_token or refresh_token")
		return
	}
	if s.requireClientAuth && form.Get("client_id") == "" {
		// Basic as the client limits read it (limit.ClientID): one parser.
		if _, _, basic := basicauth.Parse(req.Header.Get("Authorization")); !basic {
			rw.Header().Set("WWW-Authenticate", s.basicChallenge)
			writeError(rw, http.StatusUnauthorized, "invalid_client", "Client authentication is required")
			return
		}
	}

	rec := &revokeRecorder{passWriter: passWriter{rw: rw}, list: m.list, digest: tokenDigest(token), lane: -1, hint: form.Get("token_type_hint"), key: keyOf(token)}
	rec.expiry = m.expiryFor(token, form.Get("token_type_hint"))
	if !m.admitRevocation(rw, req, form, rec) {
		return
	}
	// Should the upstream handler panic before answering, the reservation
	// is given back rather than held for good.
	defer func() {
		if !rec.wrote {
			rec.wrote = true
			rec.settle(false)
		}
	}()
	m.next.ServeHTTP(rec, req)
	if !rec.wrote {
		// A handler that writes nothing has Go's server answer 200.
		rec.WriteHeader(http.StatusOK)
	}
}

// readForm reads the form body of a request the edge answers itself (a
// revoke call, a logout); it reports false when it has answered an error.
func (m *middleware) readForm(rw http.ResponseWriter, req *http.Request) (url.Values, bool) {
	if !isFormContentType(req.Header.Get("Content-Type")) {
		writeError(rw, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return nil, false
	}
	body, ok := m.readBody(rw, req)
	if !ok {
		return nil, false
	}
	form, err := parseForm(body)
	if err != nil {
		writeError(rw, http.StatusBadRequest, "invalid_request", "The request body is not a valid form: "+err.Error())
		return nil, false
	}
	return form, true
}

// readFormWith reads the form as readForm does and the parameter name that
// the endpoint requires, answering 400 invalid_request without it.
func (m *middleware) readFormWith(rw http.ResponseWriter, req *http.Request, name string) (url.Values, string, bool) {
	form, ok := m.readForm(rw, req)
	if !ok {
		return nil, "", false
	}
	value := form.Get(name)
	if value == "" {
		writeError(rw, http.StatusBadRequest, "invalid_request", "The "+name+" parameter is required")
		return nil, "", false
	}
	return form, value, true
}

// admitRevocation decides, before the identity service is called, whether
// the denylist can record this revocation: it reserves a slot in a lane
// with room, and one for each live token of the grant family its
// revocation would revoke too (else 503: recording them would drop live
// ones), and asks the client limiter (else 429). A token already revoked,
// or one whose revocation would expire at once, needs no slot. It reports
// whether the call may go on; when not, it has answered.
func (m *middleware) admitRevocation(rw http.ResponseWriter, req *http.Request, form url.Values, rec *revokeRecorder) bool {
	d := m.list
	authorization := req.Header.Get("Authorization")
	claimed := limit.ClientID(authorization, form)
	if len(claimed) > limit.MaxAuditClient {
		atomic.AddInt64(&d.count.boundAudit, 1)
	}
	rec.client = limit.AuditClient(claimed)
	lifetime := rec.expiry.Sub(d.opts.now())
	if lifetime <= 0 {
		rec.known = true
		return true
	}
	if lifetime > d.opts.maxLifetime {
		// The store cannot hold it whole: refused, never recorded shorter.
		atomic.AddInt64(&d.count.refusedLifetime, 1)
		d.emit(&obs.AuditEvent{Event: "refusal", Reason: "lifetime", Client: rec.client, Digest: digestPrefix(&rec.digest)})
		writeError(rw, http.StatusServiceUnavailable, "temporarily_unavailable", "The token's revocation would outlive maxLifetime, the longest the revocation list holds")
		return false
	}
	if d.isLoaded() && d.store.Has(&rec.digest) {
		if h := d.store.Held(&rec.digest); h.Found && h.Expiry >= rec.expiry.UnixNano() {
			// Held at least as long: no slot; the confirmation still
			// records its time (settle), which writes the file and the
			// stream, so the client's rate applies.
			rec.tag = limit.KeyOf(claimed, limit.IsConfidential(authorization, form), req.RemoteAddr)
			if decision := d.limiter.AdmitRate(rec.tag); !decision.Allowed {
				m.refuseClientLimit(rw, rec, decision)
				return false
			}
			rec.known = true
			return true
		}
	}
	lane := d.store.Reserve(&rec.digest, lifetime)
	family, ok := d.store.ReserveTokens(d.grants.FamilyOf(&rec.digest))
	if lane < 0 || !ok {
		if lane >= 0 {
			d.store.Unreserve(lane, &rec.digest)
		}
		m.refuseCapacity(rw, rec.client, &rec.digest, lifetime)
		return false
	}
	rec.family = family
	rec.tag = limit.KeyOf(claimed, limit.IsConfidential(authorization, form), req.RemoteAddr)
	decision := d.limiter.Admit(rec.tag, lane, d.store.Window(lane), d.store.Capacity(), 1+len(family))
	if !decision.Allowed {
		d.store.Unreserve(lane, &rec.digest)
		d.store.UnreserveTokens(family)
		m.refuseClientLimit(rw, rec, decision)
		return false
	}
	rec.lane = lane
	return true
}

// refuseClientLimit answers 429 to a revoke call over its client's limit,
// before the identity service is called, and counts it.
func (m *middleware) refuseClientLimit(rw http.ResponseWriter, rec *revokeRecorder, decision *limit.Decision) {
	d := m.list
	atomic.AddInt64(&d.count.refusedClientLimit, 1)
	d.emit(&obs.AuditEvent{Event: "refusal", Reason: "client_limit", Client: rec.client, Digest: digestPrefix(&rec.digest)})
	rw.Header().Set("Retry-After", strconv.Itoa(int((decision.RetryAfter+time.Second-1)/time.Second)))
	writeError(rw, http.StatusTooManyRequests, "too_many_requests", "This client is over its "+decision.Reason+" limit for revocations; retry later")
}

// refuseCapacity answers 503 to a call whose revocations the denylist cannot
// take without dropping a live one, before the identity service is called.
func (m *middleware) refuseCapacity(rw http.ResponseWriter, client string, digest *[sha256.Size]byte, lifetime time.Duration) {
	d := m.list
	d.emit(&obs.AuditEvent{Event: "refusal", Reason: "capacity", Client: client, Digest: digestPrefix(digest)})
	d.answerFull(rw, lifetime)
}

// answerFull answers 503 to a request whose revocations, of about lifetime,
// do not fit, and counts it.
func (d *denylist) answerFull(rw http.ResponseWriter, lifetime time.Duration) {
	atomic.AddInt64(&d.count.refusedCapacity, 1)
	d.warnRefusal()
	rw.Header().Set("Retry-After", strconv.Itoa(d.store.RetryAfterFull(lifetime)))
	writeError(rw, http.StatusServiceUnavailable, "temporarily_unavailable", "The revocation list is full; retry later")
}

// expiryFor returns when the revocation of token may be forgotten: a JWT's exp
// plus leeway, otherwise the TTL for its hint (the longer one without a hint)
// but never later than maxTTL from now.
func (m *middleware) expiryFor(token, hint string) time.Time {
	s := m.settings
	ttl := s.refreshTokenTTL
	switch {
	case hint == "access_token":
		ttl = s.accessTokenTTL
	case hint == "" && s.accessTokenTTL > ttl:
		ttl = s.accessTokenTTL
	}
	return time.Unix(0, m.issuedExpiry(token, "", ttl, m.list.opts.now()))
}

// checkTokenRequest checks a POST to the token endpoint. A refresh grant
// for a revoked refresh token gets 400 invalid_grant; any other request
// goes on with its body intact. It returns the request's form (nil when it
// is not form-encoded) and whether it answered the request.
func (m *middleware) checkTokenRequest(rw http.ResponseWriter, req *http.Request) (url.Values, bool) {
	if !isFormContentType(req.Header.Get("Content-Type")) {
		return nil, false
	}
	body, ok := m.readBody(rw, req)
	if !ok {
		return nil, true
	}
	form, err := parseForm(body)
	if err != nil {
		// A body the middleware cannot read unambiguously could hide a
		// revoked refresh token from it while the upstream still reads one.
		writeError(rw, http.StatusBadRequest, "invalid_request", "The request body is not a valid form: "+err.Error())
		return nil, true
	}
	if form.Get("grant_type") == "refresh_token" {
		token := form.Get("refresh_token")
		if token != "" && !m.list.awaitLoaded() {
			rejectLoading(rw)
			return nil, true
		}
		if token != "" && m.list.contains(token) {
			atomic.AddInt64(&m.list.count.rejected[rejectRefreshGrant], 1)
			writeError(rw, http.StatusBadRequest, "invalid_grant", "The refresh token has been revoked")
			return nil, true
		}
	}
	return form, false
}

// readBody reads a request body of at most maxBodyBytes and puts an identical
// copy back for the upstream. Over the limit it answers 413; ok is false when
// it has answered.
func (m *middleware) readBody(rw http.ResponseWriter, req *http.Request) (body []byte, ok bool) {
	limit := m.settings.maxBodyBytes
	tooLarge := "The request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"
	if req.ContentLength > limit {
		writeError(rw, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
		return nil, false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	_ = req.Body.Close()
	if int64(len(body)) > limit {
		writeError(rw, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
		return nil, false
	}
	if err != nil {
		writeError(rw, http.StatusBadRequest, "invalid_request", "The request body could not be read")
		return nil, false
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, true
}

// serveStats answers the stats path with the denylist's counters.
func (m *middleware) serveStats(rw http.ResponseWriter) {
	body, err := json.Marshal(m.list.stats())
	if err != nil {
		writeError(rw, http.StatusInternalServerError, "server_error", "The denylist stats could not be encoded")
		return
	}
	writeJSON(rw, http.StatusOK, body)
}

// revokeRecorder passes the identity service's response through unchanged and
// records the revocation at the moment a 2xx status is written, before any of
// the response can reach the client: once the client has its answer, the
// token is already rejected everywhere.
type revokeRecorder struct {
	passWriter
	list   *denylist
	digest [sha256.Size]byte
	expiry time.Time
	wrote  bool
	// known: the token is already revoked (or expires at once): nothing to
	// record. Otherwise lane is the slot admitRevocation reserved, which
	// the identity service's answer settles, and client who asked.
	known  bool
	lane   int
	client string    // as claimed, cut to limit.MaxAuditClient bytes: for the audit trail
	tag    limit.Key // the limiter's key of the client (limit.KeyOf)
	hint   string
	key    string // the token's pre-check key
	// family holds the slots reserved for the grant family this
	// revocation revokes too (reserveTokens).
	family []store.ReservedToken
}

// WriteHeader records the revocation on the first final 2xx status, and
// frees the reserved slot on any other. A 401 is the identity service
// refusing the client's credentials: counted, and like every refusal it
// spends none of the client's limits (internal/limit).
func (r *revokeRecorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 {
		r.wrote = true
		if code == http.StatusUnauthorized {
			atomic.AddInt64(&r.list.count.authFailures, 1)
		}
		r.settle(code >= 200 && code < 300)
	}
	r.rw.WriteHeader(code)
}

// settle records a confirmed revocation in its reserved lane, or gives the
// reservation back.
func (r *revokeRecorder) settle(confirmed bool) {
	d := r.list
	// The family's slots go back first: revokeGrantOf stores the family's
	// tokens as they are now, in whatever lanes have room.
	d.store.UnreserveTokens(r.family)
	switch {
	case r.known && confirmed:
		if r.expiry.After(d.opts.now()) {
			// Already held at least as long: the later confirmation is
			// recorded in place, at no slot (lifetime.go).
			if err := d.addReserved(&r.digest, r.key, r.expiry, -1, sourceRevoke, &revokeInfo{client: r.client, hint: r.hint, tag: r.tag}); err != nil {
				log.Printf("tokenrevocation: ERROR a confirmed revocation was enforced but not persisted: %v", err)
			}
			d.limiter.Spend(r.tag)
		}
		d.revokeGrantOf(&r.digest, nil)
	case r.known:
		return
	case confirmed:
		who := &revokeInfo{client: r.client, hint: r.hint, tag: r.tag}
		if err := d.addReserved(&r.digest, r.key, r.expiry, r.lane, sourceRevoke, who); err != nil {
			log.Printf("tokenrevocation: ERROR a confirmed revocation was enforced but not persisted: %v", err)
		}
		d.limiter.Commit(r.tag, r.lane, 1+len(r.family))
		d.revokeGrantOf(&r.digest, who)
	default:
		d.store.Unreserve(r.lane, &r.digest)
		d.limiter.Release(r.tag, r.lane, 1+len(r.family))
	}
}

// Write writes body bytes; a Write with no status first means 200.
func (r *revokeRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.rw.Write(b)
}

// warnRefusal logs, at most once per obs.WarnEvery, that revocations are being
// refused for space.
func (d *denylist) warnRefusal() {
	if obs.WarnDue(&d.count.lastWarnNs, d.opts.now().UnixNano()) {
		log.Printf("tokenrevocation: WARN denylist %q is full: %d revoke calls refused with 503 so far; raise cacheSizeMB", d.name, atomic.LoadInt64(&d.count.refusedCapacity))
	}
}
