// Sends a realistic mix of events with one of Segment's Node SDKs, changed only in its host.
// Used by tests/segment_sdks.rs.
//
// usage: node send_node.js SDK HOST WRITE_KEY PREFIX COUNT [--clock-offset-days D]
//   SDK: `analytics-node` (@segment/analytics-node) or `legacy` (analytics-node)
//
// Prints one JSON line per event sent ({"type", "userId", "messageId"}), then `flushed FAILED`
// where FAILED counts the events the SDK reported as failed.
'use strict'

const [sdk, host, writeKey, prefix, countText, ...rest] = process.argv.slice(2)
const count = Number(countText)
const offsetAt = rest.indexOf('--clock-offset-days')
const offsetDays = offsetAt >= 0 ? Number(rest[offsetAt + 1]) : 0

if (offsetDays) {
  // The device clock is off: every `new Date()` and `Date.now()` the SDK makes is shifted.
  const RealDate = Date
  const shift = offsetDays * 86400000
  class ShiftedDate extends RealDate {
    constructor (...args) {
      if (args.length === 0) super(RealDate.now() + shift)
      else super(...args)
    }

    static now () {
      return RealDate.now() + shift
    }
  }
  global.Date = ShiftedDate
}

function events (call) {
  const send = (type, message) => {
    call(type, message)
    console.log(JSON.stringify({ type, userId: message.userId, messageId: message.messageId }))
  }
  for (let i = 0; i < count; i++) {
    const userId = `${prefix}-u-${i}`
    const messageId = `${prefix}-m-${i}`
    const email = `${prefix}.${i}@example.com`
    switch (i % 6) {
      case 0:
        send('track', { userId, messageId, event: 'Order Completed', context: { traits: { email }, ip: '203.0.113.7' },
          properties: { order_id: `${prefix}-o-${i}`, revenue: 19.9 + i, currency: 'USD', products: [{ product_id: 'p-1', price: 19.9, quantity: 1 }] } })
        break
      case 1:
        send('identify', { userId, messageId, traits: { email, firstName: 'Pat', lastName: 'Lee', phone: '+1 555 0100' } })
        break
      case 2:
        send('identify', { userId, messageId, traits: { vip_buyers: true, email },
          context: { personas: { computation_key: 'vip_buyers', computation_class: 'audience', computation_id: 'aud_1', space_id: 'spa_1' } } })
        break
      case 3:
        send('page', { userId, messageId, category: 'Shop', name: 'Checkout', properties: { url: 'https://shop.example/checkout' } })
        break
      case 4:
        if (i % 12 === 4) send('screen', { userId, messageId, name: 'Cart', properties: { items: 2 } })
        else send('track', { userId, messageId, event: 'Product Viewed', properties: { product_id: 'p-2' } })
        break
      default:
        if (i % 12 === 5) send('group', { userId, messageId, groupId: `${prefix}-g`, traits: { name: 'Acme' } })
        else send('alias', { userId, messageId, previousId: `${prefix}-anon-${i}` })
    }
  }
}

let failed = 0
process.on('exit', () => console.log(`flushed ${failed}`))

async function main () {
  if (sdk === 'analytics-node') {
    const { Analytics } = require('@segment/analytics-node')
    const analytics = new Analytics({ writeKey, host, maxRetries: 3, flushInterval: 200 })
    analytics.on('error', () => { failed++ })
    events((type, message) => analytics[type](message))
    await analytics.closeAndFlush({ timeout: 60000 })
  } else if (sdk === 'legacy') {
    const Analytics = require('analytics-node')
    const analytics = new Analytics(writeKey, { host, flushAt: 20, flushInterval: 200, retryCount: 3,
      // Each message callback counts its failure; the handler only keeps the rejection handled.
      errorHandler: () => {} })
    events((type, message) => analytics[type](message, (err) => { if (err) failed++ }))
    await analytics.flush()
  } else {
    throw new Error(`unknown SDK ${sdk}`)
  }
}

main().catch((e) => { console.error(e && e.message); process.exit(1) })
