package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// secretPrefix starts a Standard Webhooks secret; the rest is base64.
const secretPrefix = "whsec_"

// Secret is a webhook signing key.
type Secret []byte

// ParseSecret reads a "whsec_<base64>" secret (the prefix is optional, as
// in the reference libraries). Keys shorter than 24 bytes or longer than 64
// are refused, the bounds the specification sets.
func ParseSecret(s string) (Secret, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s), secretPrefix)
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("secret is not whsec_ followed by base64: generate one with `openssl rand -base64 32` and prefix whsec_")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret decodes to %d bytes; Standard Webhooks wants 24 to 64 (32 recommended)", len(key))
	}
	return key, nil
}

// String writes the secret in its whsec_ form.
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s) }

// sign returns the webhook-signature header value for one message: one
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per secret, separated by
// spaces, so a receiver holding either secret of a rotation can verify it.
func sign(secrets []Secret, id string, ts time.Time, body []byte) string {
	unix := strconv.FormatInt(ts.Unix(), 10)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		mac := hmac.New(sha256.New, s)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(unix))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// SetHeaders sets the three Standard Webhooks headers on h.
func SetHeaders(h http.Header, secrets []Secret, id string, ts time.Time, body []byte) {
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderWebhookSignature, sign(secrets, id, ts, body))
}

// NewSecret returns a random 32-byte secret, for tests and `tideline dev`.
func NewSecret() Secret {
	return randomBytes(32)
}
