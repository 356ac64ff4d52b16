// CI fuzz run of the surfaces a remote party reaches: peer hellos, peer frames (decoded and stepped
// into a core, and through a real socket), client frames, HTTP.
import { describe } from 'vitest';
import { CI_COUNT, fuzzSurfaceInCi } from './ci-run.js';

/**
 * The same frames as peer-frame, through a real authenticated WebSocket: each refused frame costs
 * a close and a new handshake (50-100 inputs/s on a loaded 2-core machine), so CI runs a twentieth.
 */
const PEER_SOCKET_CI_COUNT = Math.ceil(CI_COUNT / 20);

describe('fuzzing what the network delivers', () => {
  fuzzSurfaceInCi('peer-hello', 1801);
  fuzzSurfaceInCi('peer-frame', 1802);
  fuzzSurfaceInCi('peer-socket', 1808, PEER_SOCKET_CI_COUNT);
  fuzzSurfaceInCi('client-frame', 1803);
  fuzzSurfaceInCi('http', 1804);
});
