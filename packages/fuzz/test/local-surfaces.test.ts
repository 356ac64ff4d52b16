// CI fuzz run of the surfaces behind a connection or on the machine: snapshot streams, config
// files and flags, stored records read back from disk.
import { describe } from 'vitest';
import { fuzzSurfaceInCi } from './ci-run.js';

describe('fuzzing snapshot streams, configuration and the disk', () => {
  fuzzSurfaceInCi('snapshot-chunk', 1805);
  fuzzSurfaceInCi('config', 1806);
  fuzzSurfaceInCi('storage', 1807);
});
