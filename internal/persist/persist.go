// Package persist keeps a denylist's records in the persistPath file, an
// append-only sequence of 40-byte frames (internal/record), so that a
// single Traefik without Redis forgets nothing on restart. A revocation is
// its 32-byte digest and its expiry in Unix nanoseconds, never a raw token.
// A record is written (write(2), no fsync) before the identity service's
// answer reaches the client, so it survives a Traefik restart or crash; a
// machine crash can lose what the kernel had not yet flushed.
//
// Opening is quick: a torn last frame is cut off so appends stay aligned,
// and the file is opened for appending. Reading it back is the owner's
// call (Load). The file is rewritten without its expired records once
// records have expired and enough time or appends have passed; which of
// its other records a rewrite keeps is the owner's decision (Retention).
//
// It knows nothing of denylists: it imports internal/record only.
package persist

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// CompactEvery is the least time between two rewrites for expiry alone.
const CompactEvery = 10 * time.Minute

// Retention is what the file's owner decides about what it keeps.
type Retention struct {
	// MaxTTL and Leeway decide how long a tombstone can still cancel a
	// revocation (record.DropCanceled).
	MaxTTL, Leeway time.Duration
	// Keep reports whether a rewrite at now (Unix nanoseconds) keeps ext,
	// an extension record of a type this release knows, read back whole.
	// Nil keeps every one.
	Keep func(ext *record.Extension, now int64) bool
}

// A File is an open persistPath file. Its methods are safe for concurrent
// use.
type File struct {
	path string
	now  func() time.Time

	mu            sync.Mutex
	retention     Retention
	f             *os.File
	minExpiry     int64 // earliest expiry in the file; 0 when empty
	liveAtRewrite int
	appended      int
	lastRewrite   time.Time
}

// Open cuts a torn last frame off path (a missing file is created empty,
// and its directory too) and opens it for appending. It reads nothing
// else. now is the clock a rewrite decides by.
func Open(path string, now func() time.Time) (*File, error) {
	p := &File{path: path, now: now, lastRewrite: now()}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("persistPath: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600) //nolint:gosec // the operator's persistPath
	if err != nil {
		return nil, fmt.Errorf("persistPath: %w", err)
	}
	info, err := f.Stat()
	if err == nil && info.Size()%record.FrameSize != 0 {
		err = f.Truncate(info.Size() - info.Size()%record.FrameSize)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("persistPath: %w", err)
	}
	p.f = f
	return p, nil
}

// SetRetention sets what Load and every later rewrite keep. Until it is
// called, tombstones cancel with no lifetime and a rewrite keeps every
// extension record.
func (p *File) SetRetention(r Retention) {
	p.mu.Lock()
	p.retention = r
	p.mu.Unlock()
}

// Load reads the file's live revocations and its records of other known
// types, with its tombstones applied (record.DropCanceled).
func (p *File) Load() (*record.FrameSet, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set, err := p.read()
	if err != nil {
		return nil, err
	}
	if p.minExpiry == 0 || (set.MinExpiry != 0 && set.MinExpiry < p.minExpiry) {
		p.minExpiry = set.MinExpiry
	}
	p.liveAtRewrite = len(set.Recs) + len(set.Records)
	return set, nil
}

// read decodes the whole file. The caller holds mu.
func (p *File) read() (*record.FrameSet, error) {
	buf, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("persistPath: %w", err)
	}
	now := p.now().UnixNano()
	set := record.DecodeFrames(buf, now)
	record.DropCanceled(set, now, p.retention.MaxTTL, p.retention.Leeway)
	return set, nil
}

// rewrite replaces the file with set's live revocations and the extension
// records Retention.Keep keeps, and the frames of unknown types as they
// are, through a temporary file and a rename, then reopens it for
// appending. The caller holds mu.
func (p *File) rewrite(set *record.FrameSet) error {
	tmp := p.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // the operator's persistPath
	if err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	minExpiry := int64(0)
	for i := range set.Recs {
		_, _ = w.Write(record.EncodeRevocation(&set.Recs[i]))
		if minExpiry == 0 || set.Recs[i].Expiry < minExpiry {
			minExpiry = set.Recs[i].Expiry
		}
	}
	now := p.now().UnixNano()
	keep := p.retention.Keep
	for i := range set.Records {
		ext := &set.Records[i]
		if keep != nil && !keep(ext, now) {
			continue
		}
		_, _ = w.Write(record.EncodeExtension(ext.Type, ext.Version, ext.Payload))
	}
	_, _ = w.Write(set.Unknown)
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p.path)
	}
	if err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	_ = p.f.Close()
	p.f, err = os.OpenFile(p.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	p.minExpiry = minExpiry
	p.liveAtRewrite = len(set.Recs)
	p.appended = 0
	p.lastRewrite = p.now()
	return nil
}

// Append writes one revocation. It is called before the revoke response is
// written, so the record is in the kernel before the client can act.
func (p *File) Append(rec *record.Revocation) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.f.Write(record.EncodeRevocation(rec)); err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	if p.minExpiry == 0 || rec.Expiry < p.minExpiry {
		p.minExpiry = rec.Expiry
	}
	p.appended++
	return nil
}

// AppendExtension writes one record of another type, such as a grant.
func (p *File) AppendExtension(typ, version byte, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.f.Write(record.EncodeExtension(typ, version, payload)); err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	p.appended++
	return nil
}

// CompactIfDue rewrites the file without its expired records once some
// have expired and either CompactEvery has passed or the file has doubled.
// A failure is logged; the file is left as it was.
func (p *File) CompactIfDue() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.minExpiry == 0 || p.minExpiry > now.UnixNano() {
		return
	}
	if now.Sub(p.lastRewrite) < CompactEvery && p.appended < p.liveAtRewrite+1000 {
		return
	}
	p.compact()
}

// Compact rewrites the file now, whether or not a rewrite is due. A
// failure is logged; the file is left as it was.
func (p *File) Compact() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.compact()
}

// compact reads and rewrites the file. The caller holds mu.
func (p *File) compact() {
	set, err := p.read()
	if err == nil {
		err = p.rewrite(set)
	}
	if err != nil {
		log.Printf("tokenrevocation: ERROR compacting %s: %v", p.path, err)
	}
}

// CompactLoop runs CompactIfDue every minute until stop is closed, then
// closes the file.
func (p *File) CompactLoop(stop chan struct{}) {
	for {
		select {
		case <-stop:
			p.mu.Lock()
			_ = p.f.Close()
			p.mu.Unlock()
			return
		case <-time.After(time.Minute):
		}
		p.CompactIfDue()
	}
}
