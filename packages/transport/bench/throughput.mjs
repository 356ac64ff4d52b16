// Throughput between two transports on loopback (not a test: prints numbers, asserts nothing).
//
//   pnpm exec tsc -b packages/transport && node packages/transport/bench/throughput.mjs [seconds] [entriesPerMessage] [entryBytes]
//
// The sender keeps node b's queue topped up each event-loop turn (send() until it refuses, at most
// 256 per turn) with App messages of `entriesPerMessage` entries of `entryBytes` bytes; the
// receiver counts what arrives. Both run in this one process, so the numbers are a lower bound of
// what two processes on two cores would do.
import http from 'node:http';
import { PeerTransport } from '../dist/index.js';

const seconds = Number(process.argv[2] ?? 5);
const entriesPerMessage = Number(process.argv[3] ?? 64);
const entryBytes = Number(process.argv[4] ?? 256);
// Optional: QKV_MAX_FRAME_BYTES=<n> to try another frame size.
const limits = process.env.QKV_MAX_FRAME_BYTES ? { maxFrameBytes: Number(process.env.QKV_MAX_FRAME_BYTES) } : {};
const quiet = { debug() {}, info() {}, warn: (f, m) => console.error('warn', m, f), error: (f, m) => console.error('error', m, f) };

async function listen() {
  const server = http.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const sa = await listen();
const sb = await listen();
const peers = { a: `127.0.0.1:${sa.address().port}`, b: `127.0.0.1:${sb.address().port}` };
let receivedMessages = 0;
let receivedEntries = 0;
let receivedBytes = 0;
const secret = 'bench-secret-0123456789abcdef';
const incarnation = 'b'.repeat(32);
const a = new PeerTransport({ id: 'a', clusterSecret: secret, incarnation, peers, limits, logger: quiet, onMessage() {} });
const b = new PeerTransport({
  id: 'b', clusterSecret: secret, incarnation, peers, limits, logger: quiet,
  onMessage(m) {
    receivedMessages++;
    receivedEntries += m.entries.length;
    for (const e of m.entries) receivedBytes += e.data.byteLength;
  },
});
sa.on('upgrade', (req, s, h) => a.handleUpgrade(req, s, h));
sb.on('upgrade', (req, s, h) => b.handleUpgrade(req, s, h));
while (!a.stats().peers.b.connected) await new Promise((r) => setTimeout(r, 10));

const payload = new Uint8Array(entryBytes).fill(7);
let index = 0;
function message() {
  const entries = [];
  for (let k = 0; k < entriesPerMessage; k++) entries.push({ term: 1, index: ++index, type: 0, data: payload });
  return { type: 10, to: 'b', from: 'a', term: 1, logTerm: 1, index: index - entriesPerMessage, entries, commit: index, reject: false, rejectHint: 0 };
}

let running = true;
function pump() {
  if (!running) return;
  for (let i = 0; i < 256 && a.send(message()); i++);
  setImmediate(pump);
}
const start = performance.now();
const cpuStart = process.cpuUsage();
pump();
await new Promise((r) => setTimeout(r, seconds * 1000));
running = false;
const elapsedS = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
const cpuS = (cpu.user + cpu.system) / 1e6;
const s = a.stats().peers.b;
console.log(JSON.stringify({
  entriesPerMessage, entryBytes, maxFrameBytes: a.limits.maxFrameBytes, seconds: Number(elapsedS.toFixed(2)),
  messagesPerS: Math.round(receivedMessages / elapsedS),
  entriesPerS: Math.round(receivedEntries / elapsedS),
  payloadMBPerS: Number((receivedBytes / elapsedS / 1e6).toFixed(1)),
  // Per CPU-second of this process (sender + receiver): steadier than wall-clock rates on a busy machine.
  payloadMBPerCpuS: Number((receivedBytes / cpuS / 1e6).toFixed(1)),
  entriesPerCpuS: Math.round(receivedEntries / cpuS),
  wireMBPerS: Number((s.sentBytes / elapsedS / 1e6).toFixed(1)),
  framesSent: s.sentFrames, messagesPerFrame: Number((s.sentMessages / s.sentFrames).toFixed(1)),
  droppedQueueFull: s.droppedQueueFull,
}));
await a.close();
await b.close();
sa.close();
sb.close();
