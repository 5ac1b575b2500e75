package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// consoleCSP is what SPEC §13 requires on /console and its files.
const consoleCSP = "default-src 'self'; frame-ancestors 'none'"

// chromePath is the browser of the console test: CHROME_BIN (make test-e2e sets it from
// scripts/chromium/ensure.sh), else Debian's /usr/bin/chromium. Without one the test is
// skipped, except under CI, where it must run.
func chromePath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROME_BIN")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no Chromium at %s (%v): the console's browser test is skipped; `make test-e2e` installs it "+
				"(scripts/chromium/ensure.sh), or set CHROME_BIN", path, err)
		}
		t.Fatalf("CI is set and there is no Chromium at %s (%v): run scripts/chromium/ensure.sh or set CHROME_BIN", path, err)
	}
	return path
}

// browser is one headless Chromium with one tab, and what the page reported.
type browser struct {
	ctx context.Context
	out *testkit.SyncBuffer // Chromium's own output

	mu      sync.Mutex
	console []string // console messages and exceptions of the page
}

// cspProbe runs in every document before the page's own script (injected through the
// DevTools protocol, which CSP does not govern) and records the page's CSP violations:
// a blocked script, style or connection (the WebSocket) shows up here.
const cspProbe = `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});`

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromePath(t)
	b := &browser{out: &testkit.SyncBuffer{}}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), // a fresh profile: nothing from an earlier run
		chromedp.CombinedOutput(b.out),
	)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancel := context.WithTimeout(tabCtx, 3*time.Minute)
	b.ctx = ctx
	t.Cleanup(func() {
		cancel()
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("page console:\n%s", strings.Join(b.console, "\n"))
			b.mu.Unlock()
			t.Logf("chromium output:\n%s", testkit.Tail(b.out.String(), 5000))
		}
	})
	// Start the browser, then listen to the page's console and inject the CSP probe.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v\n%s", path, err, testkit.Tail(b.out.String(), 5000))
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			b.mu.Unlock()
		}
	}()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe})
		return err
	}))
	if err != nil {
		t.Fatalf("inject the CSP probe: %v", err)
	}
	return b
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v\npage: %s", what, err, b.state(t))
	}
}

func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// state is what the page shows, for failure messages.
func (b *browser) state(t *testing.T) string {
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify({
		status: (document.getElementById('status') || {}).textContent,
		error: (document.getElementById('error') || {}).textContent,
		published: (document.getElementById('published') || {}).textContent,
		messages: ((document.getElementById('messages') || {}).textContent || '').slice(0, 2000)})`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// waitFor evaluates the JavaScript condition every 50 ms until it is true. (chromedp's
// Poll compiles its predicate with new Function, which the page's CSP forbids.)
func (b *browser) waitFor(t *testing.T, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("Boolean("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s (%s; last error %v)\npage: %s", what, cond, err, b.state(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// textOf is a JS expression: the text of the element with this id.
func textOf(id string) string {
	return "(document.getElementById(" + jsString(id) + ").textContent || '')"
}

// runConsole drives the console page in headless Chromium: paste a token, load the
// channels, watch one, see a REST publish arrive, publish from the page and find it in
// history, and check that message data is shown as text, never as HTML.
func runConsole(t *testing.T, env stackEnv, c *client) {
	base := env.baseURL()
	step(t, "served with the CSP", func(t *testing.T) {
		for path, ct := range map[string]string{"/console": "text/html", "/console/console.js": "text/javascript",
			"/console/console.css": "text/css"} {
			r := c.expect(t, http.StatusOK, nil, get, path)
			if got := r.Header.Get("Content-Security-Policy"); got != consoleCSP {
				t.Fatalf("%s: Content-Security-Policy %q, want %q", path, got, consoleCSP)
			}
			if !strings.HasPrefix(r.Header.Get("Content-Type"), ct) {
				t.Fatalf("%s: Content-Type %q", path, r.Header.Get("Content-Type"))
			}
		}
	})

	user := env.token(t, "-sub", "e2e-console")
	var cr createReply
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(user),
		jsonBody(map[string]any{"name": "Console", "admin_email": "console@example.com"}))
	tenant := cr.TenantID
	var ch channelEnvelope
	c.expect(t, http.StatusCreated, &ch, post, "/api/v1/channels", as(user, tenant, jsonBody(map[string]any{"name": "console-room"}))...)
	channel := ch.Channel.ID
	publishREST := func(t *testing.T, data string) publishedJSON {
		t.Helper()
		var p publishedJSON
		c.expect(t, http.StatusOK, &p, post, channelPath(channel, "/messages"), as(user, tenant, jsonBody(data))...)
		return p
	}

	b := newBrowser(t)
	step(t, "page loads", func(t *testing.T) {
		b.do(t, "open /console", chromedp.Navigate(base+"/console"))
		b.waitFor(t, "the script ran", `document.getElementById('load') && !document.getElementById('load').disabled`)
	})
	step(t, "a bad token is an error on the page", func(t *testing.T) {
		b.do(t, "load with a bad token",
			chromedp.SetValue(chromedp.CSS("#token"), "not-a-token"),
			chromedp.Click(chromedp.CSS("#load")))
		b.waitFor(t, "the 401 is shown", textOf("error")+".includes('401') && "+textOf("error")+".includes('unauthorized')")
	})
	step(t, "paste a token, load the channels, connect", func(t *testing.T) {
		b.do(t, "load channels",
			chromedp.SetValue(chromedp.CSS("#token"), user),
			chromedp.SetValue(chromedp.CSS("#tenant"), tenant),
			chromedp.Click(chromedp.CSS("#load")))
		b.waitFor(t, "the channel is listed", "[...document.querySelectorAll('#channel option')].some(o => o.value === "+jsString(channel)+")")
		if e := b.eval(t, textOf("error")); e != "" {
			t.Fatalf("an error is shown after a good load: %s", e)
		}
		b.do(t, "connect", chromedp.SetValue(chromedp.CSS("#channel"), channel), chromedp.Click(chromedp.CSS("#connect")))
		b.waitFor(t, "subscribed", textOf("status")+".includes('subscribed to ' + "+jsString(channel)+")")
	})
	step(t, "a REST publish appears live", func(t *testing.T) {
		p := publishREST(t, `{"text":"hello from REST","n":1}`)
		b.waitFor(t, "the message is shown", textOf("messages")+".includes('hello from REST')")
		meta := b.eval(t, `document.querySelector('#messages li .meta').textContent`)
		for _, want := range []string{fmt.Sprintf("#%d", p.Seq), p.MessageID, "user e2e-console"} {
			if !strings.Contains(meta, want) {
				t.Fatalf("message line %q lacks %q", meta, want)
			}
		}
	})
	step(t, "publish from the page, find it in history", func(t *testing.T) {
		// No spaces, and a number no float64 holds: history must return these bytes.
		typed := `{"text":"from the page","big":12345678901234567890}`
		b.do(t, "publish", chromedp.SetValue(chromedp.CSS("#data"), typed), chromedp.Click(chromedp.CSS("#publish")))
		b.waitFor(t, "the ack is shown", textOf("published")+".includes('published seq')")
		b.waitFor(t, "its own message comes back live", textOf("messages")+".includes('from the page')")
		var h historyJSON
		c.expect(t, http.StatusOK, &h, get, channelPath(channel, "/messages"), as(user, tenant)...)
		var found []messageJSON
		for _, m := range h.Messages {
			if bytes.Contains(m.Data, []byte("from the page")) {
				found = append(found, m)
			}
		}
		if len(found) != 1 {
			t.Fatalf("history has %d messages from the page, want 1: %+v", len(found), h.Messages)
		}
		m := found[0]
		if string(m.Data) != typed {
			t.Fatalf("history data %s, want the typed bytes %s", m.Data, typed)
		}
		if m.Sender.Type != "user" || m.Sender.ID != "e2e-console" || m.ChannelID != channel || m.TenantID != tenant {
			t.Fatalf("history message %+v", m)
		}
		if pub := b.eval(t, textOf("published")); !strings.Contains(pub, m.MessageID) {
			t.Fatalf("the page says %q, history has message %s", pub, m.MessageID)
		}
	})
	step(t, "message data is text, never HTML", func(t *testing.T) {
		publishREST(t, `{"html":"<img src=x onerror=\"window.__xss=1\"><b>bold</b>"}`)
		b.waitFor(t, "the markup is shown as text", textOf("messages")+".includes('<img src=x onerror=')")
		got := b.eval(t, `JSON.stringify({img: document.querySelectorAll('#messages img').length,
			b: document.querySelectorAll('#messages b').length, xss: typeof window.__xss})`)
		if got != `{"img":0,"b":0,"xss":"undefined"}` {
			t.Fatalf("message data became HTML: %s", got)
		}
	})
	step(t, "a rejected publish shows the server's error", func(t *testing.T) {
		b.do(t, "publish an array", chromedp.SetValue(chromedp.CSS("#data"), `[1,2,3]`), chromedp.Click(chromedp.CSS("#publish")))
		b.waitFor(t, "the 422 is shown", textOf("error")+".includes('422') && "+textOf("error")+".includes('validation_failed')")
	})
	step(t, "the token is kept in memory only, nothing broke the CSP", func(t *testing.T) {
		if got := b.eval(t, `JSON.stringify([localStorage.length, sessionStorage.length, document.cookie])`); got != `[0,0,""]` {
			t.Fatalf("the page stored something: [localStorage, sessionStorage, cookie] = %s", got)
		}
		if got := b.eval(t, `JSON.stringify(window.__cspViolations)`); got != "[]" {
			t.Fatalf("CSP violations: %s", got)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.console {
			if strings.HasPrefix(m, string(chromedp.ConsoleException)+":") {
				t.Fatalf("uncaught exception in the page: %s", m)
			}
		}
	})
}
