package httpapi

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestPageTokens(t *testing.T) {
	p := newPageTokens([]byte(testSecret))
	b := pageBinding{scope: "t:tenant-a", route: "members_list", filters: "status=online"}
	tok := p.wrap(b, "store-cursor-1")
	if tok == nil {
		t.Fatal("no token for a cursor")
	}
	if strings.Contains(*tok, testSecret) {
		t.Fatal("token contains the secret")
	}
	got, err := p.unwrap(b, *tok)
	if err != nil || got != "store-cursor-1" {
		t.Fatalf("unwrap = %q, %v", got, err)
	}
	if p.wrap(b, "") != nil {
		t.Fatal("last page must give a null token")
	}
	if c, err := p.unwrap(b, ""); err != nil || c != "" {
		t.Fatalf("empty token = %q, %v (want first page)", c, err)
	}

	parts := strings.Split(*tok, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("store-cursor-2")) + "." + parts[2]
	other := newPageTokens([]byte("a-different-secret-of-at-least-32-bytes"))
	bad := map[string]string{
		"garbage":        "garbage",
		"edited cursor":  forged,
		"wrong version":  "v2." + parts[1] + "." + parts[2],
		"no signature":   parts[0] + "." + parts[1],
		"bad base64":     parts[0] + ".!!!." + parts[2],
		"too long":       strings.Repeat("a", maxTokenLen+1),
		"other secret":   *other.wrap(b, "store-cursor-1"),
		"other tenant":   *p.wrap(pageBinding{scope: "t:tenant-b", route: b.route, filters: b.filters}, "store-cursor-1"),
		"other route":    *p.wrap(pageBinding{scope: b.scope, route: "list", filters: b.filters}, "store-cursor-1"),
		"other filters":  *p.wrap(pageBinding{scope: b.scope, route: b.route, filters: "status=offline"}, "store-cursor-1"),
		"ambiguous join": *p.wrap(pageBinding{scope: "t:tenant-amembers_list", route: "", filters: b.filters}, "store-cursor-1"),
	}
	for name, token := range bad {
		if _, err := p.unwrap(b, token); err == nil {
			t.Errorf("%s: accepted", name)
		} else if e := p.classifyCode(err); e != "invalid_next_token" {
			t.Errorf("%s: code %q", name, e)
		}
	}
}

func (p *pageTokens) classifyCode(err error) string {
	return (&api{}).classify(err).Code
}
