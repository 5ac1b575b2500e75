package patch_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/patch"
)

type inner struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

type body struct {
	Name     patch.Field[string]         `json:"name,omitzero"`
	Count    patch.Field[int]            `json:"count,omitzero"`
	Metadata patch.Field[map[string]any] `json:"metadata,omitzero"`
	Tags     patch.Field[[]string]       `json:"tags,omitzero"`
	Inner    patch.Field[inner]          `json:"inner,omitzero"`
}

func decode(t *testing.T, s string) body {
	t.Helper()
	var b body
	if err := json.Unmarshal([]byte(s), &b); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return b
}

func TestDecodeAbsentNullValue(t *testing.T) {
	b := decode(t, `{}`)
	if b.Name.Set || b.Name.Null || b.Name.HasValue() || !b.Name.IsZero() {
		t.Errorf("absent name = %+v", b.Name)
	}

	b = decode(t, `{"name": null, "count": null, "metadata": null, "tags": null, "inner": null}`)
	for field, f := range map[string]struct{ set, null, has bool }{
		"name":     {b.Name.Set, b.Name.Null, b.Name.HasValue()},
		"count":    {b.Count.Set, b.Count.Null, b.Count.HasValue()},
		"metadata": {b.Metadata.Set, b.Metadata.Null, b.Metadata.HasValue()},
		"tags":     {b.Tags.Set, b.Tags.Null, b.Tags.HasValue()},
		"inner":    {b.Inner.Set, b.Inner.Null, b.Inner.HasValue()},
	} {
		if !f.set || !f.null || f.has {
			t.Errorf("%s: null decoded as set=%v null=%v hasValue=%v", field, f.set, f.null, f.has)
		}
	}

	b = decode(t, "{\"name\" :\n\t null \n}")
	if !b.Name.Set || !b.Name.Null {
		t.Errorf("null with whitespace = %+v", b.Name)
	}

	b = decode(t, `{"name": "", "count": 0, "tags": [], "inner": {"a": 7}}`)
	if !b.Name.HasValue() || b.Name.Value != "" {
		t.Errorf("empty string must be a value, not absent or null: %+v", b.Name)
	}
	if !b.Count.HasValue() || b.Count.Value != 0 {
		t.Errorf("zero must be a value: %+v", b.Count)
	}
	if !b.Tags.HasValue() || b.Tags.Value == nil || len(b.Tags.Value) != 0 {
		t.Errorf("[] must be an empty value: %+v", b.Tags)
	}
	if !b.Inner.HasValue() || b.Inner.Value != (inner{A: 7}) {
		t.Errorf("inner = %+v", b.Inner)
	}
	if b.Metadata.Set {
		t.Errorf("absent metadata = %+v", b.Metadata)
	}
}

func TestDecodeWrongType(t *testing.T) {
	for _, s := range []string{`{"name": 5}`, `{"count": "x"}`, `{"metadata": []}`, `{"tags": {}}`, `{"inner": "s"}`} {
		var b body
		if err := json.Unmarshal([]byte(s), &b); err == nil {
			t.Errorf("%s decoded without error: %+v", s, b)
		}
	}
}

func TestDecodeNestedMaps(t *testing.T) {
	b := decode(t, `{"metadata": {"team": {"name": "ops", "lead": null, "ids": [1, 2.5]}, "flag": true}}`)
	if !b.Metadata.HasValue() {
		t.Fatalf("metadata = %+v", b.Metadata)
	}
	want := map[string]any{
		"team": map[string]any{"name": "ops", "lead": nil, "ids": []any{1.0, 2.5}},
		"flag": true,
	}
	if !reflect.DeepEqual(b.Metadata.Value, want) {
		t.Errorf("metadata = %#v, want %#v", b.Metadata.Value, want)
	}
	// A null inside the object is part of the value, not a null field.
	if b.Metadata.Null {
		t.Error("nested null marked the whole field null")
	}
}

// A present field replaces the previous value wholesale, also when the same struct is
// decoded again: objects are never merged (SPEC §13).
func TestDecodeReplacesWholesale(t *testing.T) {
	var b body
	for _, s := range []string{`{"metadata": {"a": 1, "keep": {"x": 1}}, "inner": {"a": 1, "b": "old"}}`, `{"metadata": {"b": 2, "keep": {"y": 2}}, "inner": {"a": 2}}`} {
		if err := json.Unmarshal([]byte(s), &b); err != nil {
			t.Fatal(err)
		}
	}
	if want := map[string]any{"b": 2.0, "keep": map[string]any{"y": 2.0}}; !reflect.DeepEqual(b.Metadata.Value, want) {
		t.Errorf("metadata after a second decode = %v, want %v", b.Metadata.Value, want)
	}
	if want := (inner{A: 2}); b.Inner.Value != want {
		t.Errorf("inner after a second decode = %+v, want %+v", b.Inner.Value, want)
	}

	// value, then null, then value again
	if err := json.Unmarshal([]byte(`{"name": "x"}`), &b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"name": null}`), &b); err != nil {
		t.Fatal(err)
	}
	if !b.Name.Null || b.Name.Value != "" {
		t.Errorf("null after a value = %+v", b.Name)
	}
	if err := json.Unmarshal([]byte(`{"name": "y"}`), &b); err != nil {
		t.Fatal(err)
	}
	if b.Name.Null || b.Name.Value != "y" {
		t.Errorf("value after null = %+v", b.Name)
	}
}

func TestEncodeOmitzero(t *testing.T) {
	cases := []struct {
		in   body
		want string
	}{
		{body{}, `{}`},
		{body{Name: patch.Null[string](), Metadata: patch.Null[map[string]any]()}, `{"name":null,"metadata":null}`},
		{body{Name: patch.Of(""), Count: patch.Of(0)}, `{"name":"","count":0}`},
		{body{Metadata: patch.Of(map[string]any{"a": map[string]any{"b": nil}}), Tags: patch.Of([]string{"x"})}, `{"metadata":{"a":{"b":null}},"tags":["x"]}`},
		{body{Inner: patch.Of(inner{A: 3})}, `{"inner":{"a":3}}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("Marshal(%+v) = %s, want %s", c.in, b, c.want)
		}
		// What a caller encodes, a service decodes to the same three states.
		var back body
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, c.in) {
			t.Errorf("round trip of %s = %+v, want %+v", b, back, c.in)
		}
	}
}

func TestConstructors(t *testing.T) {
	if f := patch.Of(5); !f.Set || f.Null || f.Value != 5 || !f.HasValue() || f.IsZero() {
		t.Errorf("Of(5) = %+v", f)
	}
	if f := patch.Null[int](); !f.Set || !f.Null || f.HasValue() || f.IsZero() {
		t.Errorf("Null() = %+v", f)
	}
	var absent patch.Field[int]
	if absent.HasValue() || !absent.IsZero() {
		t.Errorf("zero Field = %+v", absent)
	}
	// Without omitzero an absent field still encodes (as null), so it is never mistaken
	// for a value.
	b, err := json.Marshal(struct {
		F patch.Field[int] `json:"f"`
	}{})
	if err != nil || string(b) != `{"f":null}` {
		t.Errorf("absent without omitzero = %s, %v", b, err)
	}
}
