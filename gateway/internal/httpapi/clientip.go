package httpapi

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// trustedProxies decides which address a request comes from (SPEC §13: X-Forwarded-For
// only from TRUSTED_PROXIES).
//
// Why not Fiber's c.IP(): behind a trusted proxy it returns the LEFTMOST valid address of
// X-Forwarded-For, which is whatever the client put there; proxies such as AWS ALB append
// to the header. Per-address rate limits (agent login) keyed on that could be dodged by
// sending a fresh fake address with every attempt. Here the header is walked from the
// right, skipping trusted proxies: the first address no trusted proxy vouches for is the
// client.
type trustedProxies []netip.Prefix

// newTrustedProxies parses CIDRs or single addresses.
func newTrustedProxies(list []string) (trustedProxies, error) {
	var out trustedProxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("httpapi: trusted proxy %q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (t trustedProxies) trusts(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the caller's address: the peer's, unless the peer is a trusted proxy, then
// the rightmost X-Forwarded-For entry that is not a trusted proxy (the leftmost entry
// when every one is trusted). A malformed entry stops the walk: nothing left of it can
// be believed, so the last address vouched for is used.
func (t trustedProxies) clientIP(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	addr := peer.Unmap()
	if len(t) == 0 || !t.trusts(addr) {
		return addr.String()
	}
	values := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(string(values[i]), ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr.String()
			}
			addr = hop.Unmap()
			if !t.trusts(addr) {
				return addr.String()
			}
		}
	}
	return addr.String()
}
