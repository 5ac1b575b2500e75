// Package patch carries the three states of a field in a partial update (SPEC §13):
// absent (keep the stored value), null (clear it) and a value (replace it wholesale).
package patch

import (
	"bytes"
	"encoding/json"
)

// Field is one field of a PUT body. Tag it `json:"name,omitzero"` so an absent field is
// not encoded.
type Field[T any] struct {
	Set   bool // the key was present in the body
	Null  bool // ... with the value null
	Value T
}

// Of returns a Field set to v.
func Of[T any](v T) Field[T] { return Field[T]{Set: true, Value: v} }

// Null returns a Field that clears the stored value.
func Null[T any]() Field[T] { return Field[T]{Set: true, Null: true} }

// UnmarshalJSON is only called when the key is present.
func (f *Field[T]) UnmarshalJSON(b []byte) error {
	f.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		f.Null = true
		var zero T
		f.Value = zero
		return nil
	}
	// Decode into a fresh value: json merges objects into an existing map or struct,
	// and a present field replaces the old value wholesale.
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	f.Null, f.Value = false, v
	return nil
}

// MarshalJSON encodes null for an absent or null field.
func (f Field[T]) MarshalJSON() ([]byte, error) {
	if !f.Set || f.Null {
		return []byte("null"), nil
	}
	return json.Marshal(f.Value)
}

// IsZero reports an absent field, for `omitzero`.
func (f Field[T]) IsZero() bool { return !f.Set }

// HasValue reports a present, non-null field.
func (f Field[T]) HasValue() bool { return f.Set && !f.Null }
