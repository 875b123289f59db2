// Package spool keeps, on disk, the call stream appends that the event
// store refused because it was down, until they are appended.
//
// A call decided while the store is down (the GUARD_STORE_DOWN policy) is
// recorded only in its call stream, and that stream is appended when the
// call ends. Retrying that append in memory loses it when the node
// restarts before the store returns; the spool keeps it across the
// restart. It is a bbolt file in the node's data directory with one entry
// per call stream: the stream, the revision the writer expected, and the
// proposed events with their derived IDs, so that appending an entry
// twice writes nothing twice.
//
// Nothing is written here while the store answers: an entry is put only
// after an append failed, and deleted once it is appended.
package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/callguard/callguard/events"
)

// FileName is the spool's file in the node's data directory.
const FileName = "pending.db"

var bucket = []byte("pending")

// Batch is one pending append: the events of one call stream and the
// state the stream was expected in.
type Batch struct {
	Stream string
	// Revision is the stream's last revision when Exists; a call stream
	// written once has none (Exists false).
	Revision uint64
	Exists   bool
	Events   []events.Proposed
}

// Expected is the state the append expects its stream in.
func (b Batch) Expected() events.Expected { return events.ExactOrNoStream(b.Revision, b.Exists) }

// record is a Batch as stored: its own field names, so that renaming a
// Go field does not strand the entries of a running node.
type record struct {
	V        int           `json:"v"`
	Stream   string        `json:"stream"`
	Revision uint64        `json:"revision,omitempty"`
	Exists   bool          `json:"exists,omitempty"`
	Events   []eventRecord `json:"events"`
}

type eventRecord struct {
	ID      uuid.UUID       `json:"id"`
	Type    string          `json:"type"`
	Version int             `json:"version"`
	Meta    events.Metadata `json:"meta"`
	Data    json.RawMessage `json:"data"`
}

const recordVersion = 1

// Spool is the open spool file. It is safe for concurrent use.
type Spool struct {
	db *bolt.DB
	n  atomic.Int64
}

// Open opens (creating it if needed) the spool at path. A second process
// on the same file fails after a second with events.ErrLocked.
func Open(path string) (*Spool, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open pending spool %s: %w", path, events.ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open pending spool %s: %w", path, err)
	}
	s := &Spool{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		s.n.Store(int64(b.Stats().KeyN))
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open pending spool %s: %w", path, err), db.Close())
	}
	return s, nil
}

// Put stores b, replacing any entry of the same stream, and returns once
// it is on disk (fsynced). Concurrent Puts share one transaction.
func (s *Spool) Put(b Batch) error {
	if b.Stream == "" {
		return fmt.Errorf("pending spool: batch without a stream: %w", events.ErrInvalid)
	}
	rec := record{V: recordVersion, Stream: b.Stream, Revision: b.Revision, Exists: b.Exists, Events: make([]eventRecord, len(b.Events))}
	for i, p := range b.Events {
		rec.Events[i] = eventRecord{ID: p.ID, Type: p.Type, Version: p.Version, Meta: p.Meta, Data: p.Data}
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("pending spool: encode %s: %w", b.Stream, err)
	}
	key := []byte(b.Stream)
	// bolt may run a Batch function twice: added is set, not summed.
	var added bool
	err = s.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		added = bk.Get(key) == nil
		return bk.Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("pending spool: put %s: %w", b.Stream, err)
	}
	if added {
		s.n.Add(1)
	}
	return nil
}

// Delete removes the entry of stream, if any, and returns once that is on
// disk.
func (s *Spool) Delete(stream string) error {
	key := []byte(stream)
	var removed bool
	err := s.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		removed = bk.Get(key) != nil
		if !removed {
			return nil
		}
		return bk.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("pending spool: delete %s: %w", stream, err)
	}
	if removed {
		s.n.Add(-1)
	}
	return nil
}

// List returns every entry, in stream name order. An entry that cannot be
// read is reported in the error (joined) and left in place; the others are
// returned.
func (s *Spool) List() ([]Batch, error) {
	var out []Batch
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				bad = append(bad, fmt.Errorf("pending spool: entry %q: %w", k, err))
				return nil
			}
			if rec.V != recordVersion || rec.Stream != string(k) {
				bad = append(bad, fmt.Errorf("pending spool: entry %q: version %d of stream %q", k, rec.V, rec.Stream))
				return nil
			}
			b := Batch{Stream: rec.Stream, Revision: rec.Revision, Exists: rec.Exists, Events: make([]events.Proposed, len(rec.Events))}
			for i, e := range rec.Events {
				b.Events[i] = events.Proposed{ID: e.ID, Type: e.Type, Version: e.Version, Meta: e.Meta, Data: e.Data}
			}
			out = append(out, b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("pending spool: list: %w", err)
	}
	return out, errors.Join(bad...)
}

// Len is the number of entries.
func (s *Spool) Len() int { return int(s.n.Load()) }

// Path is the spool's file.
func (s *Spool) Path() string { return s.db.Path() }

// Close closes the file. Calls after Close fail.
func (s *Spool) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pending spool: close: %w", err)
	}
	return nil
}

// Backup hands fn a consistent copy of the spool file, taken in one read
// transaction: the number of pending entries in it, its size in bytes and
// what writes it. The copy is valid only inside fn.
func (s *Spool) Backup(fn func(entries int, size int64, w io.WriterTo) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		return fn(tx.Bucket(bucket).Stats().KeyN, tx.Size(), tx)
	})
	if err != nil {
		return fmt.Errorf("back up the pending spool: %w", err)
	}
	return nil
}
