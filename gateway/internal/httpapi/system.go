package httpapi

import (
	"embed"
	"fmt"
	"mime"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"
)

// ServiceName is reported by GET /.
const ServiceName = "artcafe-pubsub-gateway"

// RootInfo is GET /.
type RootInfo struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Status  string `json:"status" enum:"ok"`
}

// Health is GET /health (SPEC §4.8).
type Health struct {
	Status        string         `json:"status" enum:"ok,degraded" doc:"ok when every service has at least one instance"`
	NATSConnected bool           `json:"nats_connected"`
	Services      map[string]int `json:"services" doc:"running instances per service (tenant, agent, sshkey, channel, usage)"`
}

func (a *api) root(r *request) error {
	return r.reply(http.StatusOK, RootInfo{Service: ServiceName, Version: a.version, Status: "ok"})
}

// health is 200 while the gateway is connected to NATS (it can serve something), 503
// when it is not; "degraded" says some service has no instance.
func (a *api) health(r *request) error {
	services := a.probe.instances()
	h := Health{Status: "ok", NATSConnected: a.probe.connected(), Services: services}
	for _, n := range services {
		if n == 0 {
			h.Status = "degraded"
		}
	}
	status := http.StatusOK
	if !h.NATSConnected {
		status = http.StatusServiceUnavailable
	}
	r.c.Set(fiber.HeaderCacheControl, "no-store")
	return r.reply(status, h)
}

func (a *api) openAPIDoc(r *request) error {
	r.c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return r.c.Status(http.StatusOK).Send(a.openapi)
}

// The docs page and its assets are embedded: /docs works with no internet access, and
// with a CSP that allows only this origin (the page's init code is a file, not inline).
//
//go:embed docs/index.html docs/init.js docs/assets
var docsFS embed.FS

// docsCSP is the Content-Security-Policy of /docs (SPEC §13 "Hygiene").
const docsCSP = "default-src 'self'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
}

// loadDocs reads the embedded docs files once at start-up.
func loadDocs() (map[string]asset, error) {
	files := map[string]string{
		"/docs":                             "docs/index.html",
		"/docs/init.js":                     "docs/init.js",
		"/docs/assets/swagger-ui-bundle.js": "docs/assets/swagger-ui-bundle.js",
		"/docs/assets/swagger-ui.css":       "docs/assets/swagger-ui.css",
		"/docs/assets/favicon-32x32.png":    "docs/assets/favicon-32x32.png",
	}
	out := make(map[string]asset, len(files))
	for urlPath, name := range files {
		b, err := docsFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("embedded docs: %w", err)
		}
		ct := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) { // not left to the host's mime table
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".png":
			ct = "image/png"
		}
		out[urlPath] = asset{body: b, contentType: ct}
	}
	return out, nil
}

// docsFile serves one fixed docs file.
func (a *api) docsFile(key string) func(*request) error {
	return func(r *request) error { return a.sendDoc(r, key) }
}

// docsAsset serves /docs/assets/{file}.
func (a *api) docsAsset(r *request) error {
	return a.sendDoc(r, "/docs/assets/"+r.c.Params("file"))
}

func (a *api) sendDoc(r *request, key string) error {
	f, ok := a.docs[key]
	if !ok {
		return fiber.ErrNotFound
	}
	r.c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
	r.c.Set(fiber.HeaderXFrameOptions, "DENY")
	r.c.Set(fiber.HeaderContentType, f.contentType)
	if key == "/docs" {
		r.c.Set(fiber.HeaderCacheControl, "no-cache")
	} else {
		r.c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	}
	return r.c.Status(http.StatusOK).Send(f.body)
}
