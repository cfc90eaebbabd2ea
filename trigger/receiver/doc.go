// Package webhooktest is a webhook receiver for tests and for `tideline
// dev`. It verifies Standard Webhooks signatures (HMAC-SHA256 over
// "id.timestamp.body", one or more "v1,<base64>" values, a five-minute
// timestamp tolerance) with code of its own, independent of the trigger
// package that signs, records every delivery by webhook id, and can
// misbehave on purpose (500, 429 with Retry-After, timeouts, 410) to
// exercise a sender's retries.
package webhooktest
