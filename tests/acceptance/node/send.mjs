// Sends page, identify, track and alias with a real, unmodified Node SDK, then flushes:
// a person browses anonymously on a phone (page), signs in on a laptop (identify with both
// ids), buys (track), and the phone's anonymous id is aliased to the person (alias).
//
//   node send.mjs segment|rudder <base url> <write key> <run id>
//
// Prints one JSON line: the SDK's name and the ids it used, for the test to check against.
import { Analytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';

const [sdk, url, writeKey, run] = process.argv.slice(2);
const ids = {
  anonymousId: `anon-${run}`,
  userId: `user-${run}`,
  phoneAnonymousId: `phone-${run}`,
  email: `${run}@example.com`,
};

function sendAll(client) {
  client.page({ anonymousId: ids.phoneAnonymousId, name: 'Pricing', properties: { path: '/pricing' } });
  client.identify({
    userId: ids.userId,
    anonymousId: ids.anonymousId,
    traits: { email: ids.email, name: 'Ada' },
  });
  client.track({
    userId: ids.userId,
    event: 'Order Completed',
    properties: { revenue: 42.5, currency: 'EUR' },
  });
  client.alias({ previousId: ids.phoneAnonymousId, userId: ids.userId });
}

const failures = [];
if (sdk === 'segment') {
  const analytics = new Analytics({
    writeKey,
    host: url,
    path: '/v1/batch',
    flushAt: 10,
    flushInterval: 200,
    maxRetries: 5,
    httpRequestTimeout: 10000,
  });
  analytics.on('error', (err) => failures.push(String(err?.reason ?? err)));
  sendAll(analytics);
  await analytics.closeAndFlush({ timeout: 60000 });
} else if (sdk === 'rudder') {
  const client = new RudderAnalytics(writeKey, {
    dataPlaneUrl: url,
    flushAt: 10,
    flushInterval: 200,
    retryCount: 5,
    logLevel: 'error',
    errorHandler: (err) => failures.push(String(err)),
  });
  sendAll(client);
  await client.flush();
} else {
  throw new Error(`unknown sdk ${sdk}`);
}
console.log(JSON.stringify({ sdk, ...ids, failures }));
