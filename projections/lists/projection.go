package lists

import (
	"bytes"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/internal/rm"
	"github.com/callguard/callguard/projections/runner"
)

// Name is the projection's name in the runner.
const Name = "lists"

// version is the read model's shape; bump it when Block, Whitelisting or
// the layout below change, and the runner rebuilds the lists.
const version = "2"

// Layout of the projection's bucket:
//
//	black   number -> JSON Block     (numbers with a block recorded)
//	white   number -> JSON Whitelisting
//	ranges  list "/" range -> JSON RangeRule (rules of the rules stream)
//
// Numbers are caller keys (E.164 or "anonymous"), so bbolt's key order is
// number order and a prefix search is a seek.
const (
	bucketBlack = "black"
	bucketWhite = "white"
	bucketRange = "ranges"
)

// Projection keeps the lists. It is immutable and safe for concurrent use.
type Projection struct {
	reg *events.Registry
}

var _ runner.Projection = (*Projection)(nil)

// NewProjection returns the lists projection.
func NewProjection() *Projection { return &Projection{reg: schema.NewRegistry()} }

// Name implements runner.Projection.
func (p *Projection) Name() string { return Name }

// Version implements runner.Projection.
func (p *Projection) Version() string { return version }

// Begin implements runner.Projection.
func (p *Projection) Begin(root *bolt.Bucket) runner.Batch {
	return &batch{p: p, root: root, cache: map[string]*cached{}}
}

type cached struct {
	s     Standing
	dirty bool
}

type batch struct {
	p     *Projection
	root  *bolt.Bucket
	black *bolt.Bucket
	white *bolt.Bucket
	cache map[string]*cached
	// ranges holds the range rules changed in the batch; nil: removed.
	ranges map[string]*RangeRule
}

var blockUntilField = []byte(`"blockUntil"`)

func (b *batch) Apply(ev events.Event) error {
	if ev.Stream == schema.RulesStream {
		return b.applyRange(ev)
	}
	if !Folds(ev.Type) {
		return nil
	}
	key, ok := schema.CallerKey(ev.Stream)
	if !ok {
		return nil // a list entry is about a caller; other streams do not set one
	}
	// Most events are calls, and only an offending call under a block
	// changes a list: skip the others without decoding them. An older
	// schema version is decoded anyway, since an upcaster may rename.
	if ev.Type == schema.TypeCallReceived && ev.Version == 1 && !bytes.Contains(ev.Data, blockUntilField) {
		return nil
	}
	pl, err := rm.Decode(b.p.reg, ev)
	if err != nil {
		return err
	}
	c, err := b.load(key)
	if err != nil {
		return err
	}
	next := Fold(c.s, pl)
	if next != c.s {
		c.s, c.dirty = next, true
	}
	return nil
}

func (b *batch) load(key string) (*cached, error) {
	if c, ok := b.cache[key]; ok {
		return c, nil
	}
	if b.black == nil {
		bs, err := rm.Buckets(b.root, bucketBlack, bucketWhite)
		if err != nil {
			return nil, err
		}
		b.black, b.white = bs[0], bs[1]
	}
	c := &cached{}
	var blk Block
	if ok, err := rm.Get(b.black, []byte(key), &blk); err != nil {
		return nil, err
	} else if ok {
		c.s.Block = &blk
	}
	var wl Whitelisting
	if ok, err := rm.Get(b.white, []byte(key), &wl); err != nil {
		return nil, err
	} else if ok {
		c.s.Whitelist = &wl
	}
	b.cache[key] = c
	return c, nil
}

func (b *batch) Flush() error {
	keys := make([]string, 0, len(b.cache))
	for k, c := range b.cache {
		if c.dirty {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // bbolt writes sorted keys with the fewest page splits
	if err := b.flushRanges(); err != nil {
		return err
	}
	for _, k := range keys {
		s := b.cache[k].s
		if err := putOrDelete(b.black, k, s.Block); err != nil {
			return err
		}
		if err := putOrDelete(b.white, k, s.Whitelist); err != nil {
			return err
		}
	}
	return nil
}

func putOrDelete[T any](bk *bolt.Bucket, key string, v *T) error {
	if v == nil {
		if err := bk.Delete([]byte(key)); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		return nil
	}
	return rm.Put(bk, []byte(key), v)
}
