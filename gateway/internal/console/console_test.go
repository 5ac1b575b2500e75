package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func serve(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	app := fiber.New()
	for _, p := range Paths() {
		app.Get(p, Handler(p))
	}
	resp, err := app.Test(httptest.NewRequest(http.MethodGet, path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestServesEveryFileWithTheCSP(t *testing.T) {
	for path, ct := range map[string]string{
		PagePath:   "text/html; charset=utf-8",
		ScriptPath: "text/javascript; charset=utf-8",
		StylePath:  "text/css; charset=utf-8",
	} {
		resp, body := serve(t, path)
		if resp.StatusCode != http.StatusOK || body == "" {
			t.Fatalf("%s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != "default-src 'self'; frame-ancestors 'none'" {
			t.Fatalf("%s: CSP %q", path, got)
		}
		if got := resp.Header.Get("Content-Type"); got != ct {
			t.Fatalf("%s: Content-Type %q, want %q", path, got, ct)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("%s: headers %v", path, resp.Header)
		}
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	app := fiber.New()
	app.Get("/console/x", Handler("/console/x"))
	resp, err := app.Test(httptest.NewRequest(http.MethodGet, "/console/x", nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// The page must work under default-src 'self': no inline script or style, no event
// handler attributes, nothing loaded from elsewhere, and exactly the served files.
func TestPageNeedsNothingButItsOwnFiles(t *testing.T) {
	_, page := serve(t, PagePath)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`),    // inline script body
		regexp.MustCompile(`(?i)<style`),                         // inline stylesheet
		regexp.MustCompile(`(?i)\sstyle\s*=`),                    // style attribute
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),                 // event handler attribute
		regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`), // another origin
		regexp.MustCompile(`(?i)(src|href)\s*=\s*"(javascript|data):`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Fatalf("the page has %q (%s)", m, bad)
		}
	}
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, "src=") {
			t.Fatalf("script tag without src: %s", tag)
		}
	}
	for _, ref := range []string{`src="` + ScriptPath + `"`, `href="` + StylePath + `"`} {
		if !strings.Contains(page, ref) {
			t.Fatalf("the page does not reference %s", ref)
		}
	}
}

// Data is put in the page as text, and the token is kept in memory only.
func TestScriptNeverWritesHTMLOrStoresTheToken(t *testing.T) {
	_, js := serve(t, ScriptPath)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
		"eval(", "new Function", "setTimeout('", `setTimeout("`,
		"localStorage", "sessionStorage", "document.cookie", "indexedDB"} {
		if strings.Contains(js, bad) {
			t.Fatalf("console.js uses %s", bad)
		}
	}
	if !strings.Contains(js, "textContent") {
		t.Fatal("console.js never uses textContent")
	}
}
