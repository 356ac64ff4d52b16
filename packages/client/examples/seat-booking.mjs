// A runnable example: concurrent seat booking on top of @quorumkv/client.
//
// Several "box offices" try to book the same seats at once. A seat is booked with a
// compare-and-swap that succeeds only if the seat is still free, so no seat is ever sold twice,
// even when the client retries through a leader failover. Then it lists the bookings with a
// range and prints the cluster status.
//
// Run it against a cluster (start one with `pnpm start` once the server exists):
//   pnpm exec tsc -b packages/client
//   QKV_ENDPOINTS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 node packages/client/examples/seat-booking.mjs

import { CasFailedError, QuorumKvError, connect } from '@quorumkv/client';

/**
 * Books `seats` seats from `offices` concurrent offices; returns who got which seat.
 * @param {string[]} endpoints
 * @param {{ seats?: number, offices?: number, log?: (line: string) => void }} [options]
 * @returns {Promise<Map<string, string>>} seat -> office
 */
export async function main(endpoints, { seats = 10, offices = 4, log = console.log } = {}) {
  const kv = await connect({ endpoints, timeoutMs: 5000 });
  try {
    const run = `show-${Date.now().toString(36)}`;
    await Promise.all(Array.from({ length: offices }, (_, i) => bookAll(kv, run, `office-${i + 1}`, seats, log)));

    // Read every booking back, in key order, 100 per round trip.
    /** @type {Map<string, string>} */
    const booked = new Map();
    for await (const item of kv.range({ prefix: `${run}/seat/`, pageSize: 100 })) {
      booked.set(item.keyText().slice(`${run}/seat/`.length), item.text());
    }
    log(`${booked.size} seats booked: ${[...booked].map(([s, o]) => `${s}→${o}`).join(' ')}`);

    const status = await kv.status();
    log(`cluster: leader ${status.leader?.id ?? 'none'} in term ${status.term}, ${status.members.length} members`);
    for (const w of status.warnings) log(`warning: ${w}`);
    return booked;
  } finally {
    await kv.close();
  }
}

/** One office tries every seat; a seat someone else holds is skipped. */
async function bookAll(kv, run, office, seats, log) {
  for (let s = 1; s <= seats; s++) {
    const seat = String(s).padStart(3, '0');
    try {
      // ifAbsent: the write happens only if nobody booked the seat. A retry after a lost answer
      // returns this booking's own revision, not a failure against itself (exactly-once session).
      const { revision } = await kv.cas(`${run}/seat/${seat}`, { ifAbsent: true, value: office });
      log(`${office} booked seat ${seat} (revision ${revision})`);
    } catch (e) {
      if (e instanceof CasFailedError) continue; // taken: fine
      if (e instanceof QuorumKvError) {
        // QKV_INDETERMINATE: the booking may have been applied (writeOutcomeOf(e) === 'unknown');
        // any other code: it was not. Either way, read the seat to see who holds it.
        const now = await kv.get(`${run}/seat/${seat}`, { as: 'string' }).catch(() => undefined);
        log(`${office}: ${e.code} on seat ${seat}; it is now held by ${now?.value ?? 'nobody'}`);
        continue;
      }
      throw e;
    }
  }
}

const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  const endpoints = (process.env.QKV_ENDPOINTS ?? '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003').split(',');
  main(endpoints).catch((e) => {
    console.error(e instanceof QuorumKvError ? `${e.code}: ${e.message}` : e);
    process.exitCode = 1;
  });
}
