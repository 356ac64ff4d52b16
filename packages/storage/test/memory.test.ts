import { storageConformance } from './conformance.js';
import { memoryHarness } from './harness.js';

storageConformance('memory twin', memoryHarness);
