// Sends one of every call type through @segment/analytics-node to the
// collector at argv[2] with write key argv[3], for the user argv[4], then
// flushes. Exits non-zero when the SDK reports an error.
const { Analytics } = require('@segment/analytics-node')

const [host, writeKey, user] = process.argv.slice(2)
const anon = `${user}-anon`
const analytics = new Analytics({ writeKey, host, flushAt: 20, flushInterval: 200, maxRetries: 2 })
let failed = false
analytics.on('error', (err) => {
  failed = true
  console.error('analytics-node error:', err && (err.reason || err.message || err))
})
const context = {
  campaign: { source: 'newsletter', medium: 'email', name: 'black_friday', term: 'shoes', content: 'hero' },
  locale: 'de-DE',
  timezone: 'Europe/Berlin',
  ip: '203.0.113.7',
  userAgent: 'tideline-sdk-test',
}
analytics.identify({ userId: user, anonymousId: anon, traits: { plan: 'gold', email: `${user}@example.test` }, context })
analytics.track({ userId: user, event: 'purchase', properties: { amount: 120, currency: 'EUR' }, context })
analytics.page({ userId: user, category: 'shop', name: 'Pricing', properties: { url: 'https://shop.example.test/pricing' }, context })
analytics.screen({ userId: user, name: 'Checkout', properties: { step: 2 }, context })
analytics.group({ userId: user, groupId: `${user}-org`, traits: { name: 'Acme', plan: 'enterprise' }, context })
analytics.alias({ userId: user, previousId: `${user}-prev`, context })
analytics.closeAndFlush({ timeout: 20000 }).then(() => {
  if (failed) process.exit(1)
  console.log('sent')
})
