package tokenrevocation

import (
	"github.com/edgerevoke/tokenrevocation/internal/persist"
	"github.com/edgerevoke/tokenrevocation/internal/record"
)

// The journal. Every record this replica originates (a revocation, a
// tombstone, a grant, a logout) is written once to each of the denylist's
// two logs, each when configured: the persistPath file first (write(2), so
// the record is in the kernel before the client learns of it), then the
// Redis stream's send queue, whose sender retries on its own. A record
// learned from the stream goes to the file only (journalFile): the stream
// has it already.
//
// The journal returns the file's error and logs nothing: each caller says
// what was not persisted, as it always did.

// journalRevocation writes a revocation to the file, then queues it for the
// stream.
func (d *denylist) journalRevocation(rec *record.Revocation) error {
	var err error
	if d.persist != nil {
		err = d.persist.Append(rec)
	}
	if d.replica != nil {
		d.replica.Enqueue(*rec)
	}
	return err
}

// journalExtension writes a record of another type to the file, then queues
// it for the stream.
func (d *denylist) journalExtension(typ, version byte, payload []byte) error {
	err := d.journalFile(typ, version, payload)
	if d.replica != nil {
		d.replica.EnqueueExtension(record.Extension{Type: typ, Version: version, Payload: payload})
	}
	return err
}

// journalFile writes a record of another type to the file only.
func (d *denylist) journalFile(typ, version byte, payload []byte) error {
	if d.persist == nil {
		return nil
	}
	return d.persist.AppendExtension(typ, version, payload)
}

// retention is what the file keeps of this denylist's records: tombstones
// for maxTTL and leeway, and on a rewrite what keepOnRewrite keeps.
func (d *denylist) retention() persist.Retention {
	return persist.Retention{MaxTTL: d.opts.maxTTL, Leeway: d.opts.leeway, Keep: keepOnRewrite}
}

// keepOnRewrite reports whether a rewrite of the file at now keeps ext, a
// record of a type this release knows. Revocations a tombstone canceled are
// already gone, and so are the tombstones with nothing left to cancel
// (record.DropCanceled).
func keepOnRewrite(ext *record.Extension, now int64) bool {
	switch {
	case ext.Type == record.GrantType && ext.Version == record.GrantVersion:
		// A grant this release reads is dropped once its tokens have
		// expired; a later version is kept as it is.
		rec, err := record.DecodeGrant(ext.Payload)
		return err == nil && rec.Live(now)
	case ext.Type == record.KeyType:
		// A key no longer after its revocation: the revocation, read
		// without it, keeps the pre-check open; the key is useless.
		return false
	case ext.Type == record.TombstoneType && ext.Version == record.TombstoneVersion && len(ext.Payload) < record.TombstoneFullSize:
		// A tombstone is kept while it can cancel a revocation: the
		// revocations it canceled were left out, and one confirmed before
		// it may still arrive from the stream. One written before
		// confirmation times is dropped, as that release did: it orders by
		// file position, and the revocations after it would now come
		// before it.
		return false
	case ext.Type == record.LogoutType && ext.Version == record.LogoutVersion:
		// So is a logout whose rules have ended.
		rec, err := record.DecodeLogout(ext.Payload)
		return err == nil && keepUntil(rec) > now
	}
	return true
}
