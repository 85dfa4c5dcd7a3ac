// A plain autobahn-js subscriber for the integration tests, run by Node:
//   node --experimental-websocket tests/js/subscribe.mjs <ws url> <realm> <topic> <count>
// A <topic> of the form "query:<query>" subscribes by query: gateway.subscribe
// first, then the topic it grants.
// Prints "READY" once subscribed, then each event's envelope as one JSON line,
// and exits 0 after <count> events (or 1 on error / after 30 s).
import autobahn from "autobahn";

const [url, realm, topic, count] = process.argv.slice(2);
const wanted = Number(count);
let received = 0;
const deadline = setTimeout(() => {
  console.error(`timeout: received ${received} of ${wanted} events`);
  process.exit(1);
}, 30000);

const connection = new autobahn.Connection({ url, realm, max_retries: 0 });
connection.onopen = async (session) => {
  try {
    let target = topic;
    if (topic.startsWith("query:")) {
      const granted = await session.call("gateway.subscribe", [topic.slice("query:".length)]);
      target = granted.topic;
    }
    await session.subscribe(target, (args) => {
      console.log(JSON.stringify(args[0]));
      received += 1;
      if (received >= wanted) {
        clearTimeout(deadline);
        connection.close();
        process.exit(0);
      }
    });
    console.log("READY");
  } catch (err) {
    console.error("subscribe failed:", err.error || err, err.args || "");
    process.exit(1);
  }
};
connection.onclose = (reason, details) => {
  if (received < wanted) {
    console.error("connection closed:", reason, JSON.stringify(details));
    process.exit(1);
  }
};
connection.open();
