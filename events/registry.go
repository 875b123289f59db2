package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// ErrUnknownType means an event's type is not registered, or its version is
// newer than the code knows.
var ErrUnknownType = errors.New("unknown event type")

// Upcaster turns the JSON payload of one schema version into the next.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

type registered struct {
	version   int
	typ       reflect.Type
	upcasters map[int]Upcaster // from version v to v+1
}

// Registry maps event type names to Go payload types and upgrades older
// payloads on read. Stored events are never rewritten: an event written as
// version 1 stays version 1 in the store and is upcast every time it is
// decoded. A Registry is built at start-up and read-only after that.
type Registry struct {
	types map[string]*registered
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]*registered{}} }

// Register names the payload type of sample (a struct value) as typ at the
// current schema version.
func (r *Registry) Register(typ string, version int, sample any) {
	if _, dup := r.types[typ]; dup {
		panic(fmt.Sprintf("events: type %q registered twice", typ))
	}
	t := reflect.TypeOf(sample)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	r.types[typ] = &registered{version: version, typ: t, upcasters: map[int]Upcaster{}}
}

// Upcast registers how version from of typ becomes version from+1.
func (r *Registry) Upcast(typ string, from int, up Upcaster) {
	reg, ok := r.types[typ]
	if !ok {
		panic(fmt.Sprintf("events: upcaster for unregistered type %q", typ))
	}
	reg.upcasters[from] = up
}

// Version returns the current schema version of typ.
func (r *Registry) Version(typ string) (int, bool) {
	reg, ok := r.types[typ]
	if !ok {
		return 0, false
	}
	return reg.version, true
}

// Decode upcasts ev's payload to the current version of its type and
// returns it as a pointer to the registered Go type.
func (r *Registry) Decode(ev Event) (any, error) {
	reg, ok := r.types[ev.Type]
	if !ok {
		return nil, fmt.Errorf("decode %s@%d: %w %q", ev.Stream, ev.Revision, ErrUnknownType, ev.Type)
	}
	data, err := r.upcast(reg, ev)
	if err != nil {
		return nil, err
	}
	v := reflect.New(reg.typ)
	if err := json.Unmarshal(data, v.Interface()); err != nil {
		return nil, fmt.Errorf("decode %s@%d %s v%d: %w", ev.Stream, ev.Revision, ev.Type, reg.version, err)
	}
	return v.Interface(), nil
}

func (r *Registry) upcast(reg *registered, ev Event) (json.RawMessage, error) {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	v := ev.Version
	if v == 0 {
		v = 1
	}
	if v > reg.version {
		return nil, fmt.Errorf("decode %s@%d: %w: %s v%d is newer than this build's v%d", ev.Stream, ev.Revision, ErrUnknownType, ev.Type, v, reg.version)
	}
	for ; v < reg.version; v++ {
		up, ok := reg.upcasters[v]
		if !ok {
			return nil, fmt.Errorf("decode %s@%d: no upcaster for %s v%d to v%d", ev.Stream, ev.Revision, ev.Type, v, v+1)
		}
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("upcast %s@%d %s v%d: %w", ev.Stream, ev.Revision, ev.Type, v, err)
		}
	}
	return data, nil
}
