// The JS client (clients/js) as a long-lived subscriber, for tests that take the gateway down
// under it. Run by tests/integration/test_supervision.py:
//   node --experimental-websocket tests/js/reconnecting_subscriber.mjs <ws url> <query>
// Prints one line per happening: "OPEN <session>", "LOST <reason>", "RESUMED <session>",
// "EVENT <envelope as JSON>", "ERROR <message>", "CLOSED <reason>"; runs until killed (or 300 s).
import { Gateway } from '../../clients/js/src/gateway.js';

const [url, query] = process.argv.slice(2);
const say = (line) => process.stdout.write(`${line}\n`);
// Quick retries: the test measures how soon the client is back, not the default backoff.
const gw = new Gateway({ url, reconnect: { initialDelay: 0.1, maxDelay: 1, factor: 2, jitter: 0.5 } });
gw.on('open', (d) => say(`OPEN ${d.session}`));
gw.on('lost', (d) => say(`LOST ${d.reason}`));
gw.on('resumed', (d) => say(`RESUMED ${d.session}`));
gw.on('error', (e) => say(`ERROR ${e.uri ?? ''} ${e.message}`));
gw.on('closed', (d) => { say(`CLOSED ${d.reason}`); process.exit(1); });
setTimeout(() => { say('CLOSED timeout'); process.exit(1); }, 300_000);
await gw.connect();
await gw.subscribe(query, (envelope) => say(`EVENT ${JSON.stringify(envelope)}`));
say('SUBSCRIBED');
