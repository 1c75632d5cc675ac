package tokenrevocation

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// A streamScan checks a multipart body too large to read whole for a part
// named access_token while the upstream reads it. Every chunk the upstream
// is given has first been fed to a multipart parser in a goroutine, and the
// last byte read is always held back until the parser has seen the body's
// end: so the upstream never has a whole body that carries a revoked token.
// When one is found, the upstream's next read fails, and the response the
// proxy then writes (a 502) is replaced by the 401 (streamWriter). Memory
// is one chunk and the parser's buffer, whatever the body's size.
type streamScan struct {
	m       *middleware
	src     io.ReadCloser
	pw      *io.PipeWriter
	done    chan struct{}
	state   int32 // scanClean, scanRevoked, scanLoading
	chunk   []byte
	pending []byte // fed to the parser, not yet given to the upstream
	ended   bool
}

const (
	scanClean = iota
	scanRevoked
	scanLoading
)

// scanChunk is how much of the body is read at a time.
const scanChunk = 32 << 10

// errRevokedBody fails the upstream's read of a body carrying a revoked token.
var errRevokedBody = errors.New("tokenrevocation: the request body carries a revoked token")

// newStreamScan replaces req's body with a scanning one.
func (m *middleware) newStreamScan(req *http.Request, boundary string) *streamScan {
	pr, pw := io.Pipe()
	s := &streamScan{m: m, src: req.Body, pw: pw, done: make(chan struct{}), chunk: make([]byte, scanChunk)}
	go s.parse(pr, boundary)
	req.Body = s
	req.GetBody = nil
	return s
}

// parse reads the parts as they arrive and checks each access_token.
func (s *streamScan) parse(pr *io.PipeReader, boundary string) {
	defer close(s.done)
	for _, token := range appendMultipartTokens(nil, pr, boundary, s.m.settings.maxBodyBytes) {
		if verdict := s.m.check(token); verdict != scanClean {
			atomic.StoreInt32(&s.state, int32(verdict))
			break
		}
	}
	// Whatever is left is only read, so that the feeder never blocks.
	_, _ = io.Copy(io.Discard, pr)
}

// Read gives the upstream what the parser has been fed, less the last byte
// until the parser has seen the end.
func (s *streamScan) Read(p []byte) (int, error) {
	for len(s.pending) <= 1 && !s.ended && atomic.LoadInt32(&s.state) == scanClean {
		n, err := s.src.Read(s.chunk)
		if n > 0 {
			_, _ = s.pw.Write(s.chunk[:n])
			s.pending = append(s.pending, s.chunk[:n]...)
		}
		if err == io.EOF {
			s.ended = true
			_ = s.pw.Close()
			<-s.done
		} else if err != nil {
			s.pw.CloseWithError(err)
			return 0, err
		}
	}
	if atomic.LoadInt32(&s.state) != scanClean {
		return 0, errRevokedBody
	}
	give := len(s.pending)
	if !s.ended {
		give--
	}
	n := copy(p, s.pending[:give])
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	if n == 0 && s.ended {
		return 0, io.EOF
	}
	return n, nil
}

// Close closes the original body and ends the parser.
func (s *streamScan) Close() error {
	s.pw.CloseWithError(io.ErrClosedPipe)
	return s.src.Close()
}

// check is a token's verdict: revoked (or rejected by a logout rule),
// still loading, or clean.
func (m *middleware) check(token string) int {
	if !m.list.awaitLoaded() {
		return scanLoading
	}
	if m.list.contains(token) || (atomic.LoadInt32(m.rules) != 0 && m.list.rules.Rejects(token, m.settings.sessionClaim)) {
		return scanRevoked
	}
	return scanClean
}

// A streamWriter answers for a streamed body found to carry a revoked
// token: whatever the proxy writes after the failed read is replaced.
type streamWriter struct {
	passWriter
	m       *middleware
	scan    *streamScan
	wrote   bool
	swallow bool
}

// WriteHeader replaces the upstream's status once the scan has refused.
func (w *streamWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	switch atomic.LoadInt32(&w.scan.state) {
	case scanRevoked:
		w.swallow = true
		atomic.AddInt64(&w.m.list.count.rejected[rejectRevoked], 1)
		w.m.rejectRevoked(w.rw)
	case scanLoading:
		w.swallow = true
		rejectLoading(w.rw)
	default:
		w.rw.WriteHeader(code)
	}
}

// Write passes the body on, unless the response was replaced.
func (w *streamWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.rw.Write(b)
}
