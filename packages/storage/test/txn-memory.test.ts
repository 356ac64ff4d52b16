import { memoryHarness } from './harness.js';
import { txnConformance } from './txn-conformance.js';

txnConformance('memory twin', memoryHarness);
