// BullMQ side of bench/sidebyside.py, at BullMQ's default settings.
//   node bench.js worker  REDIS_URL QUEUE CONCURRENCY COUNTER_KEY   run until SIGTERM
//                                                  (COUNTER_KEY "-": a no-op body, no INCR)
//   node bench.js enqueue REDIS_URL QUEUE JOBS                      Queue.add, one call at a time
//   node bench.js fill    REDIS_URL QUEUE JOBS                      Queue.addBulk (pre-fill)
//   node bench.js paced   REDIS_URL QUEUE JOBS RATE                 Queue.add at RATE jobs/s, each
//                                                  job stamped with its enqueue time (data.t, ms)
// A worker whose COUNTER_KEY is "waits=KEY" runs the wait rows' body: one RPUSH of how long the
// job waited from its enqueue to its start (ms), as bench/benchtasks.py's "stamp".
// The job body is the same as bench/benchtasks.py's "incr": one INCR over its own client.
"use strict";
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");

function connection(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };
}

async function worker(url, name, concurrency, counterKey) {
  const noop = counterKey === "-";
  const waits = counterKey.startsWith("waits=") ? counterKey.slice(6) : null;
  const counter = noop ? null : new IORedis(url);
  const w = new Worker(
    name,
    noop
      ? async (job) => ({ n: job.data.n })
      : waits
        ? async (job) => {
            const waited = Date.now() - job.data.t;
            await counter.rpush(waits, waited);
            return { n: job.data.n };
          }
        : async (job) => {
            await counter.incr(counterKey);
            return { n: job.data.n };
          },
    { connection: connection(url), concurrency: Number(concurrency) },
  );
  const stop = async () => {
    await w.close();
    if (counter) await counter.quit();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

async function enqueue(url, name, jobs) {
  const q = new Queue(name, { connection: connection(url) });
  await q.waitUntilReady();
  const started = process.hrtime.bigint();
  for (let i = 0; i < jobs; i++) {
    await q.add("incr", { n: i });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ seconds }));
  await q.close();
}

async function fill(url, name, jobs) {
  const q = new Queue(name, { connection: connection(url) });
  for (let i = 0; i < jobs; i += 1000) {
    const chunk = [];
    for (let j = i; j < Math.min(jobs, i + 1000); j++) chunk.push({ name: "incr", data: { n: j } });
    await q.addBulk(chunk);
  }
  await q.close();
}

async function paced(url, name, jobs, rate) {
  const q = new Queue(name, { connection: connection(url) });
  await q.waitUntilReady();
  const started = Date.now();
  const pending = [];
  let i = 0;
  while (i < jobs) {
    const due = Math.min(jobs, Math.floor(((Date.now() - started) * rate) / 1000) + 1);
    for (; i < due; i++) pending.push(q.add("stamp", { n: i, t: Date.now() }));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  console.log(JSON.stringify({ seconds: (Date.now() - started) / 1000 }));
  await q.close();
}

const [mode, url, name, arg, extra] = process.argv.slice(2);
const modes = { worker: () => worker(url, name, arg, extra), enqueue: () => enqueue(url, name, Number(arg)),
                fill: () => fill(url, name, Number(arg)),
                paced: () => paced(url, name, Number(arg), Number(extra)) };
modes[mode]().catch((err) => {
  console.error(err);
  process.exit(1);
});
