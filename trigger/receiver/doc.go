// Package receiver is the local webhook receiver that `tideline dev`,
// `tideline backfill drill` and the tests deliver to. It verifies Standard
// Webhooks signatures (HMAC-SHA256 over "id.timestamp.body", one or more
// "v1,<base64>" values, a five-minute timestamp tolerance) with code of its
// own, independent of the trigger package that signs, records every delivery
// by webhook id, and can misbehave on purpose (500, 429 with Retry-After,
// timeouts, 410) to exercise a sender's retries.
//
// The commands above run it, so it is production code and its name does not
// say test: the house rule that production never imports test code holds.
package receiver
