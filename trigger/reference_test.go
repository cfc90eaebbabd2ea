package trigger

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestStandardWebhooksReference verifies this package's signatures with
// the reference Python implementation (PyPI standardwebhooks, installed by
// the helper script when missing): with a rotation, a receiver holding
// either secret accepts, one holding another refuses.
func TestStandardWebhooksReference(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for the reference check (apt-get install python3 python3-pip)")
	}
	current, previous, other := NewSecret(), NewSecret(), NewSecret()
	body := []byte(`{"type":"campaign.fired","timestamp":"2025-12-14T18:58:00.000Z","data":{"webhook_id":"msg_0123","customer_id":"u-1","attributes":{"name":"Zoë \"Z\" <z@example.test>"}}}`)
	h := http.Header{}
	SetHeaders(h, []Secret{current, previous}, "msg_0123", time.Now(), body)
	headers := map[string]string{}
	for k := range h {
		headers[k] = h.Get(k)
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, s := range []Secret{current, previous, other} {
		if err := enc.Encode(map[string]any{"secret": s.String(), "headers": headers, "body": string(body)}); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(python, "testdata/standardwebhooks_verify.py")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference verifier: %v\n%s(it needs network access once to pip install standardwebhooks)", err, stderr.String())
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != 3 || got[0] != "ok" || got[1] != "ok" || !strings.HasPrefix(got[2], "error: No matching signature") {
		t.Fatalf("reference verifier said %q; want ok, ok, no matching signature", got)
	}
}
