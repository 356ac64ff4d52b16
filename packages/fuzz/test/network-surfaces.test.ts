// CI fuzz run of the surfaces a remote party reaches: peer hellos, peer frames, client frames, HTTP.
import { describe } from 'vitest';
import { fuzzSurfaceInCi } from './ci-run.js';

describe('fuzzing what the network delivers', () => {
  fuzzSurfaceInCi('peer-hello', 1801);
  fuzzSurfaceInCi('peer-frame', 1802);
  fuzzSurfaceInCi('client-frame', 1803);
  fuzzSurfaceInCi('http', 1804);
});
