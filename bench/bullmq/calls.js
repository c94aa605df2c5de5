// CPU per call of one client call at a time, for bench/clientcall.py:
//   node calls.js HOST PORT CALLS
// Prints one JSON line: {"raw": us, "ioredis": us} (user + system CPU per call).
"use strict";
const net = require("net");
const IORedis = require("ioredis");

function perCall(started, calls) {
  const used = process.cpuUsage(started);
  return (used.user + used.system) / calls;
}

function rawRoundTrips(host, port, calls) {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, async () => {
      let answered;
      socket.on("data", () => answered());
      const started = process.cpuUsage();
      for (let i = 0; i < calls; i++) {
        await new Promise((r) => { answered = r; socket.write("*1\r\n$4\r\nPING\r\n"); });
      }
      const us = perCall(started, calls);
      socket.end();
      resolve(us);
    });
  });
}

async function ioredisCalls(host, port, calls) {
  const client = new IORedis({ host, port });
  await client.incr("clientcall:warm");
  const started = process.cpuUsage();
  for (let i = 0; i < calls; i++) await client.incr("clientcall:n");
  const us = perCall(started, calls);
  client.disconnect();
  return us;
}

(async () => {
  const [host, port, calls] = process.argv.slice(2);
  const raw = await rawRoundTrips(host, Number(port), Number(calls));
  const ioredis = await ioredisCalls(host, Number(port), Number(calls));
  console.log(JSON.stringify({ raw, ioredis }));
})();
