package tokenrevocation

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// A persister keeps a denylist's revocations in an append-only file, so a
// single Traefik without Redis forgets nothing on restart. Each record is
// the 32-byte digest and the expiry in Unix nanoseconds, big-endian: 40
// bytes, never a raw token. A revocation is written (write(2), no fsync)
// before the identity service's answer reaches the client, so it survives a
// Traefik restart or crash; a machine crash can lose what the kernel had not
// yet flushed. A torn last record is ignored on load. The file is rewritten
// without its expired records at start, and again once records have expired
// and enough time or appends have passed.
type persister struct {
	path string
	now  func() time.Time

	mu            sync.Mutex
	f             *os.File
	minExpiry     int64 // earliest expiry in the file; 0 when empty
	liveAtRewrite int
	appended      int
	lastRewrite   time.Time
}

const (
	// persistRecordSize is one record in the file.
	persistRecordSize = sha256.Size + 8
	// compactEvery is the least time between two rewrites for expiry alone.
	compactEvery = 10 * time.Minute
)

// openPersister reads path (a missing file is an empty one), rewrites it
// with its live records only, and opens it for appending.
func openPersister(path string, now func() time.Time) (*persister, []revocation, error) {
	p := &persister{path: path, now: now}
	recs, err := p.readLive()
	if err != nil {
		return nil, nil, err
	}
	if err := p.rewrite(recs); err != nil {
		return nil, nil, err
	}
	return p, recs, nil
}

// readLive returns the file's unexpired records.
func (p *persister) readLive() ([]revocation, error) {
	f, err := os.Open(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("persistPath: %w", err)
	}
	defer f.Close()
	now := p.now().UnixNano()
	r := bufio.NewReaderSize(f, 1<<20)
	var recs []revocation
	var buf [persistRecordSize]byte
	for {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return recs, nil
			}
			return nil, fmt.Errorf("persistPath: %w", err)
		}
		var rec revocation
		copy(rec.digest[:], buf[:sha256.Size])
		rec.expiry = int64(binary.BigEndian.Uint64(buf[sha256.Size:]))
		if rec.expiry > now {
			recs = append(recs, rec)
		}
	}
}

// rewrite replaces the file with recs through a temporary file and a
// rename, then reopens it for appending. The caller holds mu or owns p.
func (p *persister) rewrite(recs []revocation) error {
	tmp := p.path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // the operator's persistPath
	if err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	minExpiry := int64(0)
	for i := range recs {
		_, _ = w.Write(encodeRecord(&recs[i]))
		if minExpiry == 0 || recs[i].expiry < minExpiry {
			minExpiry = recs[i].expiry
		}
	}
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
	if p.f != nil {
		_ = p.f.Close()
	}
	p.f, err = os.OpenFile(p.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	p.minExpiry = minExpiry
	p.liveAtRewrite = len(recs)
	p.appended = 0
	p.lastRewrite = p.now()
	return nil
}

func encodeRecord(rec *revocation) []byte {
	var buf [persistRecordSize]byte
	copy(buf[:], rec.digest[:])
	binary.BigEndian.PutUint64(buf[sha256.Size:], uint64(rec.expiry))
	return buf[:]
}

// append writes one record. It is called before the revoke response is
// written, so the record is in the kernel before the client can act.
func (p *persister) append(rec *revocation) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.f.Write(encodeRecord(rec)); err != nil {
		return fmt.Errorf("persistPath: %w", err)
	}
	if p.minExpiry == 0 || rec.expiry < p.minExpiry {
		p.minExpiry = rec.expiry
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
	recs, err := p.readLive()
	if err == nil {
		err = p.rewrite(recs)
	}
	if err != nil {
		log.Printf("tokenrevocation: ERROR compacting %s: %v", p.path, err)
	}
}

// compactLoop runs compactIfDue every minute for the process's lifetime.
func (p *persister) compactLoop() {
	for {
		time.Sleep(time.Minute)
		p.compactIfDue()
	}
}
