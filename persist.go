package tokenrevocation

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

// A persister keeps a denylist's revocations in an append-only file, so a
// single Traefik without Redis forgets nothing on restart. The file is a
// sequence of 40-byte frames (record.go): a revocation is its 32-byte digest
// and its expiry in Unix nanoseconds, never a raw token. A revocation is
// written (write(2), no fsync) before the identity service's answer reaches
// the client, so it survives a Traefik restart or crash; a machine crash can
// lose what the kernel had not yet flushed.
//
// Opening is quick, for New: a torn last frame is cut off so appends stay
// aligned, and the file is opened for appending. Reading it back happens in
// the background (loader.go). The file is rewritten without its expired
// records once records have expired and enough time or appends have passed.
type persister struct {
	path string
	now  func() time.Time
	// maxTTL and leeway decide how long a tombstone is kept (lifetime.go).
	maxTTL, leeway time.Duration

	mu            sync.Mutex
	f             *os.File
	minExpiry     int64 // earliest expiry in the file; 0 when empty
	liveAtRewrite int
	appended      int
	lastRewrite   time.Time
}

// compactEvery is the least time between two rewrites for expiry alone.
const compactEvery = 10 * time.Minute

// openPersister cuts a torn last frame off path (a missing file is created
// empty) and opens it for appending. It reads nothing else.
func openPersister(path string, now func() time.Time) (*persister, error) {
	p := &persister{path: path, now: now, lastRewrite: now()}
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

// load reads the file's live revocations and its records of other known
// types, for the loader.
func (p *persister) load() (*record.FrameSet, error) {
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
func (p *persister) read() (*record.FrameSet, error) {
	buf, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("persistPath: %w", err)
	}
	now := p.now().UnixNano()
	set := record.DecodeFrames(buf, now)
	record.DropCanceled(set, now, p.maxTTL, p.leeway)
	return set, nil
}

// rewrite replaces the file with set's live revocations and extension
// frames through a temporary file and a rename, then reopens it for
// appending. The caller holds mu.
func (p *persister) rewrite(set *record.FrameSet) error {
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
	for i := range set.Records {
		ext := &set.Records[i]
		if ext.Type == record.GrantType && ext.Version == record.GrantVersion {
			// A grant this release reads is dropped once its tokens have
			// expired; a later version is kept as it is.
			rec, err := record.DecodeGrant(ext.Payload)
			if err != nil || !rec.Live(now) {
				continue
			}
		}
		if ext.Type == record.KeyType {
			// A key no longer after its revocation: the revocation, read
			// without it, keeps the pre-check open; the key is useless.
			continue
		}
		// A tombstone is kept while it can cancel a revocation (read
		// dropped those that cannot): the revocations it canceled were left
		// out above, and one confirmed before it may still arrive from
		// the stream. One written before confirmation times is dropped,
		// as that release did: it orders by file position, and the
		// revocations after it would now come before it.
		if ext.Type == record.TombstoneType && ext.Version == record.TombstoneVersion && len(ext.Payload) < record.TombstoneFullSize {
			continue
		}
		if ext.Type == record.LogoutType && ext.Version == record.LogoutVersion {
			// So is a logout whose rules have ended.
			rec, err := record.DecodeLogout(ext.Payload)
			if err != nil || keepUntil(rec) <= now {
				continue
			}
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

// append writes one record. It is called before the revoke response is
// written, so the record is in the kernel before the client can act.
func (p *persister) append(rec *record.Revocation) error {
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

// appendExtension writes one record of another type, such as a grant.
//
//nolint:unparam // each record type has its own version; all are 1 so far
func (p *persister) appendExtension(typ, version byte, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.f.Write(record.EncodeExtension(typ, version, payload)); err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	p.appended++
	return nil
}

// compactIfDue rewrites the file without its expired records once some
// have expired and either compactEvery has passed or the file has doubled.
func (p *persister) compactIfDue() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.minExpiry == 0 || p.minExpiry > now.UnixNano() {
		return
	}
	if now.Sub(p.lastRewrite) < compactEvery && p.appended < p.liveAtRewrite+1000 {
		return
	}
	set, err := p.read()
	if err == nil {
		err = p.rewrite(set)
	}
	if err != nil {
		log.Printf("tokenrevocation: ERROR compacting %s: %v", p.path, err)
	}
}

// compactLoop runs compactIfDue every minute until stop is closed.
func (p *persister) compactLoop(stop chan struct{}) {
	for {
		select {
		case <-stop:
			p.mu.Lock()
			_ = p.f.Close()
			p.mu.Unlock()
			return
		case <-time.After(time.Minute):
		}
		p.compactIfDue()
	}
}
