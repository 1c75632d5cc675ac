package tokenrevocation

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
)

// Bodies an app may read access_token from (tokenSources form). Each kind is
// read the way a lenient app would, within maxBodyBytes, and put back
// byte-identical for the upstream:
//   - a form body (application/x-www-form-urlencoded), and a body with no
//     Content-Type or with one Go cannot parse, which Rack and PHP read as a
//     form;
//   - a JSON object's top-level access_token (passport-http-bearer);
//   - a multipart part named access_token (PHP's $_REQUEST, Rails' params),
//     read whole when the body fits maxBodyBytes, else scanned as it streams
//     to the upstream (streamscan.go), never buffered whole;
//   - any of these with Content-Encoding gzip or deflate, inflated within
//     maxBodyBytes.
//
// A body of one of these kinds that the edge cannot read with certainty
// (another Content-Encoding, or a form or JSON body over maxBodyBytes) is
// refused with 415 or 413; any other media type (an image, a file) passes
// unread.
const (
	bodyOther = iota
	bodyForm
	bodyJSON
	bodyMultipart
)

// bodyKind classifies a Content-Type value, and returns the multipart
// boundary. A missing or malformed value reads as a form, as Rack and PHP
// read it, unless what precedes its ';' names another kind.
func bodyKind(contentType string) (kind int, boundary string) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mediaType, _, _ = strings.Cut(contentType, ";")
		mediaType = strings.ToLower(strings.TrimSpace(mediaType))
		if strings.HasPrefix(mediaType, "multipart/") {
			// No boundary Go can read: scanned as a form, which finds
			// "access_token=" only if it is there as text.
			return bodyForm, ""
		}
	}
	switch {
	case mediaType == "" || mediaType == "application/x-www-form-urlencoded":
		return bodyForm, ""
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		return bodyJSON, ""
	case strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "":
		return bodyMultipart, params["boundary"]
	case strings.HasPrefix(mediaType, "multipart/"):
		return bodyForm, ""
	case err != nil:
		// Malformed and naming no known kind: read as a form.
		return bodyForm, ""
	}
	return bodyOther, ""
}

// bodyTokens adds the access_token values of req's body to tokens. ok is
// false when it has answered the request (413, 415, 400). scan is set for
// a multipart body too large to read whole: the caller streams it.
func (m *middleware) bodyTokens(rw http.ResponseWriter, req *http.Request, tokens []string) (out []string, scan *streamScan, ok bool) {
	kind, boundary := bodyKind(req.Header.Get("Content-Type"))
	if kind == bodyOther {
		return tokens, nil, true
	}
	encoding := contentEncoding(req.Header)
	if encoding < 0 {
		writeError(rw, http.StatusUnsupportedMediaType, "invalid_request", "The edge cannot read this Content-Encoding; send the body as identity, gzip or deflate")
		return nil, nil, false
	}
	limit := m.settings.maxBodyBytes
	if kind == bodyMultipart && encoding == encodingIdentity && (req.ContentLength < 0 || req.ContentLength > limit) {
		// Read whole when it turns out to fit, else scanned as it streams,
		// from its first byte.
		prefix, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
		if err != nil {
			writeError(rw, http.StatusBadRequest, "invalid_request", "The request body could not be read")
			return nil, nil, false
		}
		if int64(len(prefix)) > limit {
			req.Body = bodyReadCloser{io.MultiReader(bytes.NewReader(prefix), req.Body), req.Body}
			return tokens, m.newStreamScan(req, boundary), true
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(prefix))
		return appendMultipartTokens(tokens, bytes.NewReader(prefix), boundary, limit), nil, true
	}
	body, ok := m.readBody(rw, req)
	if !ok || len(body) == 0 {
		return tokens, nil, ok
	}
	if encoding != encodingIdentity {
		if body, ok = inflate(body, encoding, limit); !ok {
			writeError(rw, http.StatusRequestEntityTooLarge, "invalid_request", "The request body does not inflate within maxBodyBytes")
			return nil, nil, false
		}
	}
	switch kind {
	case bodyForm:
		tokens = appendAccessTokens(tokens, string(body))
	case bodyJSON:
		tokens = appendJSONTokens(tokens, body)
	default:
		tokens = appendMultipartTokens(tokens, bytes.NewReader(body), boundary, limit)
	}
	return tokens, nil, true
}

// Content encodings the edge reads.
const (
	encodingIdentity = iota
	encodingGzip
	encodingDeflate
)

// contentEncoding is the body's one Content-Encoding the edge can undo,
// or -1 for any other (several layers included).
func contentEncoding(h http.Header) int {
	values := h["Content-Encoding"]
	if len(values) == 0 {
		return encodingIdentity
	}
	if len(values) > 1 {
		return -1
	}
	switch strings.ToLower(strings.TrimSpace(values[0])) {
	case "", "identity":
		return encodingIdentity
	case "gzip", "x-gzip":
		return encodingGzip
	case "deflate":
		return encodingDeflate
	}
	return -1
}

// inflate undoes a gzip or deflate encoding (deflate as zlib, or raw as
// some clients send it); ok is false when the result exceeds limit or the
// data does not decode.
func inflate(body []byte, encoding int, limit int64) ([]byte, bool) {
	var r io.Reader
	if encoding == encodingGzip {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, false
		}
		r = zr
	} else if zr, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
		r = zr
	} else {
		r = flate.NewReader(bytes.NewReader(body))
	}
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil || int64(len(out)) > limit {
		return nil, false
	}
	return out, true
}

// appendJSONTokens adds every string value of a top-level member of a JSON
// object whose name reads as access_token (every one when repeated: parsers
// differ on which they keep). A body that is not a JSON object adds
// nothing: an app's JSON parser does not read it either.
func appendJSONTokens(tokens []string, body []byte) []string {
	if !mayHoldAccessToken(string(body)) {
		return tokens
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return tokens
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return tokens
		}
		name, _ := t.(string)
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			return tokens
		}
		var s string
		if isAccessTokenName(name) && json.Unmarshal(value, &s) == nil && s != "" {
			tokens = append(tokens, s)
		}
	}
	return tokens
}

// mayHoldAccessToken is a cheap test that spares the parsers bodies that
// cannot name access_token: the name in any case, or an escape that could
// spell it. serveBody repeats it inline.
func mayHoldAccessToken(s string) bool {
	return strings.IndexByte(s, '\\') >= 0 || strings.IndexByte(s, '%') >= 0 || strings.Contains(strings.ToLower(s), "access")
}

// appendMultipartTokens adds the value of every part named access_token, up
// to limit bytes each, reading parts until the body ends or stops parsing:
// a part read before a syntax error is still checked, as PHP would read it.
func appendMultipartTokens(tokens []string, body io.Reader, boundary string, limit int64) []string {
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextRawPart()
		if err != nil {
			return tokens
		}
		if isAccessTokenName(part.FormName()) {
			value, err := io.ReadAll(io.LimitReader(part, limit))
			if err == nil && len(value) > 0 {
				tokens = append(tokens, string(value))
				if t := strings.TrimSpace(string(value)); t != string(value) && t != "" {
					tokens = append(tokens, t)
				}
			}
		}
		_ = part.Close()
	}
}

// bodyReadCloser reads from one reader and closes another. Named fields,
// not embedded interfaces, which Yaegi v0.16.1 does not forward reliably.
type bodyReadCloser struct {
	r io.Reader
	c io.Closer
}

// Read reads from the reader.
func (b bodyReadCloser) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close closes the closer.
func (b bodyReadCloser) Close() error { return b.c.Close() }
