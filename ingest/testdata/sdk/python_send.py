"""Sends one of every call type through segment-analytics-python (gzip on)
to the collector at argv[1] with write key argv[2], for the user argv[3].
Exits non-zero when the SDK reports an error."""
import sys

import segment.analytics as analytics

host, write_key, user = sys.argv[1:4]
errors = []
analytics.write_key = write_key
analytics.host = host
analytics.gzip = True
analytics.max_retries = 2
analytics.on_error = lambda err, batch: errors.append(repr(err))

context = {
    "campaign": {"source": "ads", "medium": "cpc", "name": "winter_sale", "term": "boots", "content": "banner"},
    "locale": "fr-FR",
    "timezone": "Europe/Paris",
    "page": {"url": "https://shop.example.test/boots?x=1", "path": "/boots", "referrer": "https://search.example.test/", "title": "Boots"},
}
anon = user + "-anon"
analytics.identify(user, {"plan": "silver"}, context=context, anonymous_id=anon)
analytics.track(user, "purchase", {"amount": 80}, context=context)
analytics.page(user, "shop", "Boots", {"path": "/boots"}, context=context)
analytics.screen(user, "app", "Cart", {"items": 3}, context=context)
analytics.group(user, user + "-org", {"name": "Globex", "plan": "team"}, context=context)
analytics.alias(user + "-prev", user, context=context)
analytics.flush()
analytics.shutdown()
if errors:
    print("analytics-python errors:", errors, file=sys.stderr)
    sys.exit(1)
print("sent")
