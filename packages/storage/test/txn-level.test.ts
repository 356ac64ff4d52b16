import { levelHarness } from './harness.js';
import { txnConformance } from './txn-conformance.js';

txnConformance('LevelDB (classic-level)', levelHarness);
