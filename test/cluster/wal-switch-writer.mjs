// Child process of power-loss-wal.test.ts: appends large synced log entries to a node store at
// argv[2] until LevelDB switches to a new write-ahead-log file, prints each acknowledged index as
// a JSON line, and after the first append that landed in the new file prints {switched} and
// waits to be killed (its kill is the power cut). Uses the built store (packages/storage/dist).
import { readdirSync } from 'node:fs';
import { openNodeStore } from '../../packages/storage/dist/index.js';

/** Entry size: a 4 MiB memtable fills in about 16 appends. */
const ENTRY_BYTES = 256 * 1024;
/** Bound on appends (far more than a switch needs). */
const APPENDS_MAX = 200;
/** How long it waits for its kill before giving up. */
const WAIT_FOR_KILL_MS = 60_000;

const dir = process.argv[2];
const newestWal = () => readdirSync(dir).filter((f) => /^\d+\.log$/.test(f)).sort().at(-1);
const store = await openNodeStore(dir);
const loaded = await store.log.load();
let index = loaded.entries.at(-1)?.index ?? loaded.snapshotMeta?.index ?? 0;
const first = newestWal();
for (let i = 0; i < APPENDS_MAX; i++) {
  index++;
  const data = new Uint8Array(ENTRY_BYTES).fill(index % 251);
  await store.log.append({ hardState: { term: 1, vote: null, commit: index }, entries: [{ term: 1, index, type: 0, data }], sync: true });
  const wal = newestWal();
  process.stdout.write(JSON.stringify({ acked: index, wal }) + '\n');
  if (wal !== first) {
    process.stdout.write(JSON.stringify({ switched: wal, acked: index }) + '\n');
    setTimeout(() => process.exit(3), WAIT_FOR_KILL_MS);
    await new Promise(() => undefined);
  }
}
process.stdout.write(JSON.stringify({ error: `no WAL switch after ${APPENDS_MAX} appends` }) + '\n');
