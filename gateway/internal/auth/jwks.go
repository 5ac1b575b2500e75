package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// jwks holds an OIDC provider's signing keys.
//
// Layout: jwkset fetches the set into keys (our Storage, which keeps only RSA/EC
// signature keys and notes every successful fetch); keyfunc reads keys to verify tokens.
// A token whose kid is unknown triggers one refetch, at most once a minute, through
// refetcher. That gate is a non-blocking Allow in front of the library, because the
// library's own limiter makes callers Wait for the next slot and shares that deadline with
// the fetch itself (a caller arriving just before the slot would sleep, then fetch with
// no time left). Concurrent callers with new kids share one refetch.
type jwks struct {
	keys      *keyStore
	kf        keyfunc.Keyfunc
	refetcher jwkset.Storage
	limiter   *rate.Limiter
	flight    singleflight.Group
	log       zerolog.Logger
}

// Outcome of the latest fetch of the key set.
const (
	fetchNone int32 = iota
	fetchOK
	fetchFailed
)

var errNoKey = errors.New("no usable JWKS key for this token")

func newJWKS(ctx context.Context, url string, refresh time.Duration, log zerolog.Logger) (*jwks, error) {
	j := &jwks{
		keys:    &keyStore{Storage: jwkset.NewMemoryStorage()},
		limiter: rate.NewLimiter(rate.Every(jwksUnknownKIDRefetch), 1),
		log:     log,
	}
	remote, err := jwkset.NewStorageFromHTTP(url, jwkset.HTTPClientStorageOptions{
		Ctx:                       ctx,
		HTTPTimeout:               jwksFetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler: func(_ context.Context, err error) {
			j.keys.state.Store(fetchFailed)
			j.log.Warn().Err(err).Str("jwks_url", url).Msg("JWKS fetch failed")
		},
		RefreshInterval: refresh,
		Storage:         j.keys,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %q: %w", url, err)
	}
	// Unlimited here: the once-a-minute gate is j.limiter (see the type's comment).
	j.refetcher, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{url: remote},
		PrioritizeHTTP:    true,
		RateLimitWaitMax:  jwksFetchTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %q: %w", url, err)
	}
	// keyfunc reads our store directly, so verifying never fetches by itself.
	j.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: j.keys})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %q: %w", url, err)
	}
	return j, nil
}

// unavailable reports that the provider's keys cannot be trusted to be current: never
// fetched, or the latest fetch failed.
func (j *jwks) unavailable() bool { return j.keys.state.Load() != fetchOK }

// keyFunc is the jwt.Keyfunc of OIDC tokens: the JWKS key for the token's kid whose type
// fits the token's algorithm (RS256 → RSA, ES256 → P-256).
func (j *jwks) keyFunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		if kid, ok := t.Header["kid"].(string); ok && kid != "" {
			if _, err := j.keys.KeyRead(ctx, kid); errors.Is(err, jwkset.ErrKeyNotFound) {
				j.refetch(ctx, kid)
			}
		}
		got, err := j.kf.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, errors.Join(errNoKey, err)
		}
		if set, ok := got.(jwt.VerificationKeySet); ok { // no kid: try every fitting key
			var fit jwt.VerificationKeySet
			for _, k := range set.Keys {
				if keyFits(alg, k) {
					fit.Keys = append(fit.Keys, k)
				}
			}
			if len(fit.Keys) == 0 {
				return nil, errNoKey
			}
			return fit, nil
		}
		if !keyFits(alg, got) {
			return nil, fmt.Errorf("%w: key type does not fit %s", errNoKey, alg)
		}
		return got, nil
	}
}

// refetch fetches the key set again for an unknown kid, at most once a minute; callers
// that arrive while a refetch runs wait for it (or for their own context).
func (j *jwks) refetch(ctx context.Context, kid string) {
	ch := j.flight.DoChan("refetch", func() (any, error) {
		if !j.limiter.Allow() {
			return nil, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
		defer cancel()
		// A miss in the client's own storage makes it refetch (its limiter is unlimited).
		_, _ = j.refetcher.KeyRead(fctx, kid)
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func keyFits(alg string, key any) bool {
	switch alg {
	case jwt.SigningMethodRS256.Alg():
		_, ok := key.(*rsa.PublicKey)
		return ok
	case jwt.SigningMethodES256.Alg():
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	}
	return false
}

// keyStore is the JWKS storage: it keeps only keys usable for RS256/ES256 signatures
// (SPEC §13: RSA/EC keys only) and records that a fetch succeeded.
type keyStore struct {
	jwkset.Storage
	state atomic.Int32
}

// KeyReplaceAll is called by jwkset after each successful fetch.
func (s *keyStore) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	keep := make([]jwkset.JWK, 0, len(given))
	for _, k := range given {
		if usable(k) {
			keep = append(keep, k)
		}
	}
	if err := s.Storage.KeyReplaceAll(ctx, keep); err != nil {
		return err
	}
	s.state.Store(fetchOK)
	return nil
}

func usable(k jwkset.JWK) bool {
	m := k.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return false
	}
	switch key := k.Key().(type) {
	case *rsa.PublicKey:
		return key.N.BitLen() >= 2048
	case *rsa.PrivateKey:
		return key.N.BitLen() >= 2048
	case *ecdsa.PublicKey, *ecdsa.PrivateKey:
		return true
	}
	return false
}
