package httpapi

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"
)

// Raw carries a service's JSON encoding of a T through the gateway as it is: a single
// resource in a reply is relayed, not decoded and encoded again (on a read that was a
// fifth of the gateway's CPU). The OpenAPI document shows T's schema.
type Raw[T any] []byte

// MarshalJSON writes the bytes as they came (null when there were none).
func (r Raw[T]) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON keeps a copy of the value's bytes.
func (r *Raw[T]) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// Schema documents a Raw[T] as a T.
func (Raw[T]) Schema(reg huma.Registry) *huma.Schema {
	return reg.Schema(reflect.TypeFor[T](), true, "")
}
