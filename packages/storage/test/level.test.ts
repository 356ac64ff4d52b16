import { storageConformance } from './conformance.js';
import { levelHarness } from './harness.js';

storageConformance('LevelDB (classic-level)', levelHarness);
