// BullMQ side of bench/workflows.py: FlowProducer at BullMQ's default settings.
//   node flows.js fanin URL QUEUE CHILDREN    one parent with CHILDREN children (one
//                                              FlowProducer.add); prints {seconds, parentId}
//   node flows.js steps URL QUEUE ROUNDS      ROUNDS times, one after another: a 3-step chain
//                                              (s3 <- s2 <- s1, nested children) and three plain
//                                              jobs (Queue.addBulk); prints {chain: [ms], plain:
//                                              [ms]}, each from just before the add call to the
//                                              last job's finishedOn (the completed set's score)
// The jobs are "noop" jobs for bench.js's no-op worker (COUNTER_KEY "-"), run in its own process.
"use strict";
const { FlowProducer, Queue } = require("bullmq");
const IORedis = require("ioredis");

function connection(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };
}

async function fanin(url, name, children) {
  const flow = new FlowProducer({ connection: connection(url) });
  const kids = [];
  for (let i = 0; i < children; i++) kids.push({ name: "noop", queueName: name, data: { n: i } });
  await flow.waitUntilReady();
  const started = process.hrtime.bigint();
  const tree = await flow.add({ name: "noop", queueName: name, data: { n: -1 }, children: kids });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ seconds, parentId: tree.job.id }));
  await flow.close();
}

async function finished(redis, name, id) {
  for (;;) {
    const score = await redis.zscore(`bull:${name}:completed`, id);
    if (score !== null) return Number(score);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

async function steps(url, name, rounds) {
  const flow = new FlowProducer({ connection: connection(url) });
  const queue = new Queue(name, { connection: connection(url) });
  const redis = new IORedis(url);
  await flow.waitUntilReady();
  await queue.waitUntilReady();
  const chain = [];
  const plain = [];
  for (let r = 0; r < rounds; r++) {
    let t0 = Date.now();
    const tree = await flow.add({
      name: "noop", queueName: name, data: { n: 3 },
      children: [{ name: "noop", queueName: name, data: { n: 2 },
                   children: [{ name: "noop", queueName: name, data: { n: 1 } }] }],
    });
    chain.push((await finished(redis, name, tree.job.id)) - t0);
    t0 = Date.now();
    const jobs = await queue.addBulk([1, 2, 3].map((n) => ({ name: "noop", data: { n } })));
    let last = 0;
    for (const job of jobs) last = Math.max(last, await finished(redis, name, job.id));
    plain.push(last - t0);
  }
  console.log(JSON.stringify({ chain, plain }));
  await flow.close();
  await queue.close();
  await redis.quit();
}

const [mode, url, name, arg] = process.argv.slice(2);
const modes = { fanin: () => fanin(url, name, Number(arg)), steps: () => steps(url, name, Number(arg)) };
modes[mode]().catch((err) => {
  console.error(err);
  process.exit(1);
});
