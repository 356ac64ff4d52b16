// A fake node for measurements: the real /client endpoint (compiled into bench/dist by
// measure.mjs) in front of an in-memory KvService that is always the leader and answers at once.
// Prints "PORT <n>" when listening; on SIGTERM prints "CPU <user+system µs> OPS <served>".

import { createServer } from 'node:http';
import { attachClientEndpoint } from './dist/client-endpoint.js';

const id = process.argv[2] ?? 'n1';
const items = new Map();
const sessions = new Map();
let revision = 0;
let served = 0;

const hex = (b) => Buffer.from(b).toString('hex');
function write(session, apply) {
  let t = sessions.get(session.id);
  if (!t) sessions.set(session.id, (t = new Map()));
  const stored = t.get(session.seq);
  if (stored) return stored;
  const result = apply();
  t.set(session.seq, result);
  for (const seq of t.keys()) if (seq < session.ackedBelow) t.delete(seq);
  return result;
}

const service = {
  identity: () => ({ serverId: id, leader: { id, address: `127.0.0.1:${port}` } }),
  async get(args) {
    served++;
    return { item: items.get(hex(args.key)) ?? null };
  },
  async put(args) {
    served++;
    return write(args.session, () => {
      const rev = ++revision;
      const cur = items.get(hex(args.key));
      items.set(hex(args.key), { key: args.key, value: args.value, createRevision: cur?.createRevision ?? rev, modRevision: rev, version: (cur?.version ?? 0) + 1 });
      return { revision: rev };
    });
  },
  async delete() { throw new Error('not used'); },
  async cas() { throw new Error('not used'); },
  async range() { return { items: [], more: false }; },
  async status() { throw new Error('not used'); },
};

const endpoint = attachClientEndpoint({ service, maxInflightPerConnection: 1024 });
const server = createServer();
server.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
let port = 0;
server.listen(0, '127.0.0.1', () => {
  port = server.address().port;
  console.log(`PORT ${port}`);
});
process.on('SIGTERM', () => {
  const u = process.cpuUsage();
  console.log(`CPU ${u.user + u.system} OPS ${served}`);
  process.exit(0);
});
