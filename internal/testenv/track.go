package testenv

import (
	"bytes"
	"net/http"
	"testing"
)

// Post sends body as JSON to url with writeKey as the basic-auth user, as
// a Segment client sends to the collector, and returns the response (its
// body read and closed: the status and headers are what is left).
func Post(t testing.TB, url, writeKey string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
