// BullMQ side of bench/executors.py: a Worker with a sandboxed processor (child processes).
//   node sandboxed.js REDIS_URL QUEUE CONCURRENCY   run until SIGTERM
// The job (sandboxed-processor.js) burns BENCH_CPU_MICROS of CPU, then one INCR.
"use strict";
const path = require("path");
const { Worker } = require("bullmq");

const [url, name, concurrency] = process.argv.slice(2);
const u = new URL(url);
const w = new Worker(name, path.join(__dirname, "sandboxed-processor.js"), {
  connection: { host: u.hostname, port: Number(u.port || 6379) },
  concurrency: Number(concurrency),
  useWorkerThreads: false,
});
w.on("ready", () => console.log("ready"));
const stop = async () => {
  await w.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
