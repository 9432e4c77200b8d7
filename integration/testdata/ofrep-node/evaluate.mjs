// Evaluates FlagBridge's flags through OpenFeature's server SDK and its
// OFREP provider, as a Node.js service would: FLAGBRIDGE_URL and
// FLAGBRIDGE_KEY (a live key) from the environment, and
// NODE_EXTRA_CA_CERTS trusting the test server. Prints one JSON line.
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

await OpenFeature.setProviderAndWait(new OFREPProvider({
  baseUrl: process.env.FLAGBRIDGE_URL,
  headers: [['Authorization', `Bearer ${process.env.FLAGBRIDGE_KEY}`]],
}));
const client = OpenFeature.getClient();
const pro = await client.getBooleanDetails('new-checkout', false, { targetingKey: 'user-42', plan: 'pro' });
const free = await client.getBooleanDetails('new-checkout', true, { targetingKey: 'user-7', plan: 'free' });
const missing = await client.getStringDetails('no-such-flag', 'fallback', { targetingKey: 'user-42' });
console.log(JSON.stringify({
  pro: [pro.value, pro.reason, pro.variant],
  free: [free.value, free.reason, free.variant],
  missing: [missing.value, missing.errorCode],
}));
await OpenFeature.close();
