"""Verifies Standard Webhooks messages with the reference Python library.

The Go tests sign (or capture) messages and hand them here as JSON lines on
stdin: {"secret": "whsec_...", "headers": {...}, "body": "..."}. For each
line this prints one JSON line: {"ok": true} or {"ok": false, "error": "..."}.
The library is an implementation independent of tideline's signer, so a
message it accepts is one any Standard Webhooks receiver accepts.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            Webhook(msg["secret"]).verify(msg["body"], msg["headers"], json_parse=False)
            out = {"ok": True}
        except WebhookVerificationError as e:
            out = {"ok": False, "error": str(e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
