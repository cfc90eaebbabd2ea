package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// The SDK tests drive Segment's own libraries against a collector and a
// loader and read what landed in ClickHouse. What they need is installed
// by the fixture, from ingest/testdata/sdk: the npm packages of its
// package-lock.json (analytics-node, analytics-next, playwright-core), a
// virtualenv with requirements.txt (segment-analytics-python), the Maven
// dependencies of java/pom.xml (analytics-java), and Debian's chromium. An
// installation that fails fails the test.
const sdkDir = "testdata/sdk"

var (
	npmOnce, venvOnce, chromiumOnce, mavenOnce sync.Once
	npmErr, venvErr, chromiumErr, mavenErr     error
	javaClasspath                              string
)

// needJavaSDK resolves analytics-java with Maven and returns its classpath.
func needJavaSDK(t *testing.T) string {
	t.Helper()
	mavenOnce.Do(func() {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("tideline-sdk-java-%d.classpath", os.Getpid()))
		defer os.Remove(out)
		if mavenErr = run(filepath.Join(sdkDir, "java"), "mvn", "-q", "-B", "dependency:build-classpath", "-Dmdep.outputFile="+out); mavenErr != nil {
			return
		}
		b, err := os.ReadFile(out)
		javaClasspath, mavenErr = strings.TrimSpace(string(b)), err
	})
	if mavenErr != nil {
		t.Fatalf("resolve analytics-java with Maven: %v", mavenErr)
	}
	return javaClasspath
}

func run(dir string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// needNodeModules installs the fixture's npm packages when they are
// missing or older than the lock file.
func needNodeModules(t *testing.T) {
	t.Helper()
	npmOnce.Do(func() {
		lock, err := os.Stat(filepath.Join(sdkDir, "package-lock.json"))
		if err != nil {
			npmErr = err
			return
		}
		if st, err := os.Stat(filepath.Join(sdkDir, "node_modules", ".package-lock.json")); err == nil && !st.ModTime().Before(lock.ModTime()) {
			return
		}
		npmErr = run(sdkDir, "npm", "ci", "--no-audit", "--no-fund")
	})
	if npmErr != nil {
		t.Fatalf("install the SDK test's npm packages: %v", npmErr)
	}
}

// venvPython is the fixture's virtualenv interpreter, with
// segment-analytics-python installed.
func venvPython(t *testing.T) string {
	t.Helper()
	py := filepath.Join(sdkDir, ".venv", "bin", "python")
	venvOnce.Do(func() {
		if run(".", py, "-c", "import segment.analytics") == nil {
			return
		}
		if venvErr = run(".", "python3", "-m", "venv", filepath.Join(sdkDir, ".venv")); venvErr != nil {
			return
		}
		venvErr = run(".", py, "-m", "pip", "install", "-q", "-r", filepath.Join(sdkDir, "requirements.txt"))
	})
	if venvErr != nil {
		t.Fatalf("install segment-analytics-python: %v", venvErr)
	}
	return py
}

// needChromium installs Debian's chromium when /usr/bin/chromium is missing.
func needChromium(t *testing.T) {
	t.Helper()
	chromiumOnce.Do(func() {
		if _, err := os.Stat("/usr/bin/chromium"); err == nil {
			return
		}
		if chromiumErr = run(".", "apt-get", "update", "-qq"); chromiumErr != nil {
			return
		}
		cmd := exec.Command("apt-get", "install", "-y", "-qq", "chromium")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			chromiumErr = fmt.Errorf("apt-get install chromium: %w\n%s", err, out)
		}
	})
	if chromiumErr != nil {
		t.Fatalf("install chromium: %v", chromiumErr)
	}
}

// sdkRow is one events row as the SDK tests read it.
type sdkRow struct {
	Type, Customer, User, Anon, Event, Previous, Group, Traits, Props, Lane                 string
	CampaignSource, CampaignMedium, CampaignName, CampaignTerm, CampaignContent             string
	PageURL, PagePath, PageReferrer, PageTitle, IP, UA, Locale, TZ, LibName, LibVer, Contxt string
}

// sdkRows waits until the events of user (as userId, anonymousId or
// previousId) include every type in want, then returns them by type.
func sdkRows(t *testing.T, conn *chdb.Conn, user, anon string, want ...string) map[string]sdkRow {
	t.Helper()
	var rows map[string]sdkRow
	testenv.Eventually(t, 60*time.Second, "the SDK's events in ClickHouse", func() (bool, string) {
		rows = map[string]sdkRow{}
		rs, err := conn.Query(context.Background(), `SELECT type, customer_id, user_id, anonymous_id, event, previous_id, group_id, traits, properties, lane,
			context_campaign_source, context_campaign_medium, context_campaign_name, context_campaign_term, context_campaign_content,
			context_page_url, context_page_path, context_page_referrer, context_page_title, context_ip, context_user_agent,
			context_locale, context_timezone, context_library_name, context_library_version, context
			FROM events_unique WHERE user_id = ? OR anonymous_id = ? ORDER BY event_time_ms`, user, anon)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var r sdkRow
			if err := rs.Scan(&r.Type, &r.Customer, &r.User, &r.Anon, &r.Event, &r.Previous, &r.Group, &r.Traits, &r.Props, &r.Lane,
				&r.CampaignSource, &r.CampaignMedium, &r.CampaignName, &r.CampaignTerm, &r.CampaignContent,
				&r.PageURL, &r.PagePath, &r.PageReferrer, &r.PageTitle, &r.IP, &r.UA, &r.Locale, &r.TZ, &r.LibName, &r.LibVer, &r.Contxt); err != nil {
				t.Fatal(err)
			}
			if _, dup := rows[r.Type]; dup {
				t.Errorf("two %s rows for %s", r.Type, user)
			}
			rows[r.Type] = r
		}
		var have []string
		for k := range rows {
			have = append(have, k)
		}
		sort.Strings(have)
		for _, w := range want {
			if _, ok := rows[w]; !ok {
				return false, "types " + strings.Join(have, ",")
			}
		}
		return true, ""
	})
	return rows
}

// linkedUser is the user identity_links resolves anon:id to ("" when none).
func linkedUser(t *testing.T, conn *chdb.Conn, id string) string {
	t.Helper()
	var u string
	testenv.Eventually(t, 30*time.Second, "the identity link of "+id, func() (bool, string) {
		rs, err := conn.Query(context.Background(), "SELECT customer_id FROM customer_identity WHERE anonymous_customer_id = ?", "anon:"+id)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			if err := rs.Scan(&u); err != nil {
				t.Fatal(err)
			}
		}
		return u != "", "no link"
	})
	return u
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func runID() string { return fmt.Sprintf("%08x", rand.Uint32()) }

// TestSDKNode: @segment/analytics-node sends identify, track, page, screen,
// group and alias to /v1/batch (JSON, HTTP Basic); every call lands with
// its context.
func TestSDKNode(t *testing.T) {
	needNodeModules(t)
	conn := testenv.ClickHouse(t)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	user := "node-" + runID()
	cmd := exec.Command("node", "node_send.js", p.http.URL, "server-demo-key", user)
	cmd.Dir = sdkDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("analytics-node: %v\n%s", err, out)
	}
	rows := sdkRows(t, conn, user, user+"-anon", "identify", "track", "page", "screen", "group", "alias")
	for typ, r := range rows {
		check(t, typ+" lane", r.Lane, "server")
		check(t, typ+" customer", r.Customer, user)
		check(t, typ+" library", r.LibName, "@segment/analytics-node")
		check(t, typ+" campaign", r.CampaignSource+"/"+r.CampaignMedium+"/"+r.CampaignName+"/"+r.CampaignTerm+"/"+r.CampaignContent, "newsletter/email/black_friday/shoes/hero")
		check(t, typ+" locale", r.Locale+" "+r.TZ, "de-DE Europe/Berlin")
		check(t, typ+" ip", r.IP, "203.0.113.7")
		check(t, typ+" user agent", r.UA, "tideline-sdk-test")
		if r.LibVer == "" || !strings.Contains(r.Contxt, `"campaign"`) {
			t.Errorf("%s: library version %q, context %s", typ, r.LibVer, r.Contxt)
		}
	}
	check(t, "identify anonymousId", rows["identify"].Anon, user+"-anon")
	check(t, "track event", rows["track"].Event, "purchase")
	check(t, "page name", rows["page"].Event, "Pricing")
	check(t, "screen name", rows["screen"].Event, "Checkout")
	check(t, "group id", rows["group"].Group, user+"-org")
	check(t, "group traits", rows["group"].Traits, `{"group_id":"`+user+`-org","group_name":"Acme","group_plan":"enterprise"}`)
	check(t, "alias previousId", rows["alias"].Previous, user+"-prev")
	check(t, "identify links its anonymous id", linkedUser(t, conn, user+"-anon"), user)
	check(t, "alias links the previous id", linkedUser(t, conn, user+"-prev"), user)
	check(t, "campaign as an attribute", queryString(t, conn,
		"SELECT tupleElement(argMaxMerge(last_value), 1) FROM customer_attributes WHERE customer_id = ? AND attribute = 'context_campaign_name'", user), "black_friday")
	check(t, "customer_context", queryString(t, conn,
		"SELECT concat(first_campaign_name, ' ', last_locale, ' ', arrayStringConcat(groups, ',')) FROM customer_context WHERE customer_id = ?", user), "black_friday de-DE "+user+"-org")
}

func queryString(t *testing.T, conn *chdb.Conn, q string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// TestSDKPython: segment-analytics-python with gzip on sends every call
// type to /v1/batch; every call lands with its context.
func TestSDKPython(t *testing.T) {
	py := venvPython(t)
	conn := testenv.ClickHouse(t)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	user := "py-" + runID()
	cmd := exec.Command(py, filepath.Join(sdkDir, "python_send.py"), p.http.URL, "server-demo-key", user)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("analytics-python: %v\n%s", err, out)
	}
	rows := sdkRows(t, conn, user, user+"-anon", "identify", "track", "page", "screen", "group", "alias")
	for typ, r := range rows {
		check(t, typ+" lane", r.Lane, "server")
		check(t, typ+" library", r.LibName, "analytics-python")
		check(t, typ+" campaign", r.CampaignSource+"/"+r.CampaignMedium+"/"+r.CampaignName+"/"+r.CampaignTerm+"/"+r.CampaignContent, "ads/cpc/winter_sale/boots/banner")
		check(t, typ+" page", r.PageURL+" "+r.PagePath+" "+r.PageReferrer+" "+r.PageTitle, "https://shop.example.test/boots?x=1 /boots https://search.example.test/ Boots")
		check(t, typ+" locale", r.Locale+" "+r.TZ, "fr-FR Europe/Paris")
		check(t, typ+" ip (the request's address)", r.IP, "127.0.0.1")
		if r.LibVer != "2.4.0" {
			t.Errorf("%s library version %q", typ, r.LibVer)
		}
	}
	check(t, "track event", rows["track"].Event, "purchase")
	check(t, "page name", rows["page"].Event, "Boots")
	check(t, "screen name", rows["screen"].Event, "Cart")
	check(t, "group traits", rows["group"].Traits, `{"group_id":"`+user+`-org","group_name":"Globex","group_plan":"team"}`)
	check(t, "alias previousId", rows["alias"].Previous, user+"-prev")
	check(t, "alias links the previous id", linkedUser(t, conn, user+"-prev"), user)
}

// TestSDKJava: analytics-java posts its batches to /v1/import/ (with the
// slash) with its library in the batch's own context; every call lands
// with the message's context and the batch's library.
func TestSDKJava(t *testing.T) {
	cp := needJavaSDK(t)
	conn := testenv.ClickHouse(t)
	var (
		mu   sync.Mutex
		seen []string
	)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		proxy(w, r, p.http.URL)
	}))
	t.Cleanup(collector.Close)
	user := "java-" + runID()
	cmd := exec.Command("java", "-cp", cp, "Send.java", collector.URL, "server-demo-key", user)
	cmd.Dir = filepath.Join(sdkDir, "java")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("analytics-java: %v\n%s", err, out)
	}
	rows := sdkRows(t, conn, user, user+"-anon", "identify", "track", "page", "screen", "group", "alias")
	for typ, r := range rows {
		check(t, typ+" lane", r.Lane, "server")
		check(t, typ+" customer", r.Customer, user)
		check(t, typ+" library (the batch's context)", r.LibName+" "+r.LibVer, "analytics-java 3.5.4")
		check(t, typ+" campaign", r.CampaignSource+"/"+r.CampaignMedium+"/"+r.CampaignName+"/"+r.CampaignTerm+"/"+r.CampaignContent, "newsletter/email/black_friday/shoes/hero")
		check(t, typ+" locale", r.Locale+" "+r.TZ, "de-DE Europe/Berlin")
		check(t, typ+" ip", r.IP, "203.0.113.7")
		check(t, typ+" user agent", r.UA, "tideline-sdk-test")
	}
	check(t, "track event", rows["track"].Event, "purchase")
	check(t, "page name", rows["page"].Event, "Pricing")
	check(t, "screen name", rows["screen"].Event, "Checkout")
	check(t, "group id", rows["group"].Group, user+"-org")
	check(t, "alias previousId", rows["alias"].Previous, user+"-prev")
	check(t, "identify links its anonymous id", linkedUser(t, conn, user+"-anon"), user)
	check(t, "alias links the previous id", linkedUser(t, conn, user+"-prev"), user)
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, "\n"); !strings.Contains(got, "POST /v1/import/") {
		t.Errorf("no POST /v1/import/ among the requests:\n%s", got)
	}
}

// TestSDKBrowser: analytics-next in headless Chromium, on a page served
// from another origin (http://localhost:<port>) than the collector
// (http://127.0.0.1:<port>), sends page, track, alias, identify and group
// to the short paths /v1/p, /v1/t, ... as text/plain after a CORS
// preflight, or with its batching delivery strategy to /v1/b; the events
// land with the page's context and the UTM campaign of its URL, and alias
// links the browser's anonymous id.
func TestSDKBrowser(t *testing.T) {
	needNodeModules(t)
	needChromium(t)
	for _, tc := range []struct {
		strategy string
		paths    []string
	}{
		{"standard", []string{"OPTIONS /v1/p", "POST /v1/p text/plain", "POST /v1/t text/plain", "POST /v1/a text/plain", "POST /v1/i text/plain", "POST /v1/g text/plain"}},
		{"batching", []string{"OPTIONS /v1/b", "POST /v1/b text/plain"}},
	} {
		t.Run(tc.strategy, func(t *testing.T) { browserSends(t, tc.strategy, tc.paths) })
	}
}

// browserSends runs the test page with analytics-next's delivery strategy
// and checks the rows and that the collector saw the requests paths.
func browserSends(t *testing.T, strategy string, paths []string) {
	conn := testenv.ClickHouse(t)
	p := startPipeline(t, testenv.Embedded(t), conn, fastLoader())
	var (
		mu   sync.Mutex
		seen []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		proxy(w, r, p.http.URL)
	}))
	t.Cleanup(collector.Close)
	mux := http.NewServeMux()
	mux.Handle("/analytics-next/bundles/", http.StripPrefix("/analytics-next/bundles/",
		http.FileServer(http.Dir(filepath.Join(sdkDir, "node_modules/@segment/analytics-next/dist/umd")))))
	mux.HandleFunc("/shop", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join(sdkDir, "page.html")) })
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)
	user := "web-" + runID()
	pageURL := strings.Replace(site.URL, "127.0.0.1", "localhost", 1) + "/shop?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday&utm_term=shoes&utm_content=hero" +
		"&collector=" + strings.TrimPrefix(collector.URL, "http://") + "&writeKey=web-demo-key&user=" + user + "&strategy=" + strategy
	cmd := exec.Command("node", "browser.js", pageURL)
	cmd.Dir = sdkDir
	out, err := cmd.Output()
	var res struct {
		Result struct {
			Error       string `json:"error"`
			AnonymousID string `json:"anonymousId"`
			Sent        []struct {
				Type   string `json:"type"`
				Failed bool   `json:"failed"`
			} `json:"sent"`
			Batches []struct {
				Events int    `json:"events"`
				Status int    `json:"status"`
				Error  string `json:"error"`
			} `json:"batches"`
		} `json:"result"`
		Logs []string `json:"logs"`
	}
	if jerr := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil || jerr != nil || res.Result.Error != "" {
		t.Fatalf("browser: %v %v %s\n%s", err, jerr, res.Result.Error, out)
	}
	for _, s := range res.Result.Sent {
		if s.Failed {
			t.Errorf("analytics-next reports the %s as not delivered (logs: %v)", s.Type, res.Logs)
		}
	}
	for _, b := range res.Result.Batches {
		if b.Status != http.StatusOK {
			t.Errorf("a batch of %d events was answered %d %s (logs: %v)", b.Events, b.Status, b.Error, res.Logs)
		}
	}
	if strategy == "batching" && len(res.Result.Batches) < 2 {
		t.Errorf("%d batches; five calls in batches of three make at least two", len(res.Result.Batches))
	}
	anon := res.Result.AnonymousID
	rows := sdkRows(t, conn, user, anon, "page", "track", "alias", "identify", "group")
	for typ, r := range rows {
		check(t, typ+" lane", r.Lane, "web")
		check(t, typ+" library", r.LibName, "analytics.js")
		check(t, typ+" campaign", r.CampaignSource+"/"+r.CampaignMedium+"/"+r.CampaignName+"/"+r.CampaignTerm+"/"+r.CampaignContent, "newsletter/email/black_friday/shoes/hero")
		check(t, typ+" page path", r.PagePath, "/shop")
		check(t, typ+" page title", r.PageTitle, "tideline SDK test page")
		check(t, typ+" ip (the request's address)", r.IP, "127.0.0.1")
		if !strings.HasPrefix(r.PageURL, "http://localhost:") || !strings.Contains(r.UA, "Chrome") || r.Locale == "" || r.TZ == "" || r.LibVer == "" {
			t.Errorf("%s: page url %q, user agent %q, locale %q, timezone %q, library version %q", typ, r.PageURL, r.UA, r.Locale, r.TZ, r.LibVer)
		}
	}
	check(t, "page anonymous customer", rows["page"].Customer, "anon:"+anon)
	check(t, "page name", rows["page"].Event, "Landing")
	check(t, "track event", rows["track"].Event, "add_to_cart")
	check(t, "alias previousId", rows["alias"].Previous, anon)
	check(t, "group id", rows["group"].Group, user+"-org")
	check(t, "alias links the browser's anonymous id", linkedUser(t, conn, anon), user)
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(seen, "\n")
	for _, want := range paths {
		if !strings.Contains(got, want) {
			t.Errorf("no %q among the requests the collector received:\n%s", want, got)
		}
	}
}

// proxy forwards r to the collector at base, so the test can see the
// browser's requests (method, path, content type) as they arrived.
func proxy(w http.ResponseWriter, r *http.Request, base string) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	_, _ = w.Write(b.Bytes())
}
