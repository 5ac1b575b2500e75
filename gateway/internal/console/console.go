// Package console is the gateway's browser console (GET /console): one HTML page, one
// script and one stylesheet, embedded in the binary so the page works with no internet
// access. A person pastes a token (kept in the page's memory only), loads the tenant's
// channels, watches one channel's live messages over the WebSocket and publishes JSON
// objects over REST. The files are served under a Content-Security-Policy that allows
// only this origin: the page has no inline script or style, and message data is put in
// the document as text, never as HTML.
package console

import (
	"embed"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// The paths the gateway serves the console at.
const (
	PagePath   = "/console"
	ScriptPath = "/console/console.js"
	StylePath  = "/console/console.css"
)

// CSP is the Content-Security-Policy of every console file (SPEC §13 "Hygiene"). With
// no connect-src, fetch and WebSocket fall back to default-src 'self', which matches
// ws:/wss: to the page's own host and port.
const CSP = "default-src 'self'; frame-ancestors 'none'"

//go:embed assets/index.html assets/console.js assets/console.css
var assets embed.FS

// file names the embedded file of a served path and its content type (not left to the
// host's MIME table).
func file(path string) (name, contentType string, ok bool) {
	switch path {
	case PagePath:
		return "assets/index.html", "text/html; charset=utf-8", true
	case ScriptPath:
		return "assets/console.js", "text/javascript; charset=utf-8", true
	case StylePath:
		return "assets/console.css", "text/css; charset=utf-8", true
	}
	return "", "", false
}

// Paths lists the served paths.
func Paths() []string { return []string{PagePath, ScriptPath, StylePath} }

// Handler returns the handler of one of Paths. The file is read once, here; an unknown
// path gives a handler that answers 404.
func Handler(path string) fiber.Handler {
	name, contentType, ok := file(path)
	if !ok {
		return func(*fiber.Ctx) error { return fiber.ErrNotFound }
	}
	body, err := assets.ReadFile(name)
	if err != nil { // cannot happen: the embed directive above names every file
		return func(*fiber.Ctx) error { return fiber.ErrNotFound }
	}
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, CSP)
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		// Small files: always revalidated, so a new gateway's page and script never mix
		// with an old cached copy of the other.
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderContentType, contentType)
		return c.Status(http.StatusOK).Send(body)
	}
}
