// @quorumkv/fuzz: seeded fuzzers, one per surface an outsider (or a damaged disk) can reach, built
// on fast-check with structure-aware generators plus raw mutation. docs/security.md § Fuzzing.
import type { Surface } from './runner.js';
import { clientFrameSurface } from './surfaces/client-frame.js';
import { configSurface } from './surfaces/config.js';
import { httpSurface } from './surfaces/http.js';
import { peerFrameSurface } from './surfaces/peer-frame.js';
import { peerHelloSurface } from './surfaces/peer-hello.js';
import { peerSocketSurface } from './surfaces/peer-socket.js';
import { snapshotChunkSurface } from './surfaces/snapshot-chunk.js';
import { storageSurface } from './surfaces/storage.js';

export { runFuzz, replayCommand, FuzzViolation, type FuzzReport, type FuzzOptions, type Surface, type FuzzTarget, type Outcome } from './runner.js';

/** Every surface, by name (the `--surface` of `pnpm fuzz`). */
export const SURFACES: Readonly<Record<string, Surface<never>>> = Object.freeze(
  Object.fromEntries(
    ([peerHelloSurface, peerFrameSurface, peerSocketSurface, clientFrameSurface, httpSurface, snapshotChunkSurface, configSurface, storageSurface] as Surface<never>[]).map((s) => [s.name, s]),
  ),
);
