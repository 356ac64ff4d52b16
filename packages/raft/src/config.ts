// Config validation: every limit is checked once, at construction, with a message naming it.
import { ConfigError } from './errors.js';
import type { Config } from './types.js';

function positiveInt(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`${name} must be a positive integer (got ${String(v)})`);
  }
}

export function validateConfig(c: Config): void {
  if (typeof c.id !== 'string' || c.id === '') throw new ConfigError('id must be a non-empty string');
  if (!c.storage) throw new ConfigError('storage is required');
  if (!c.random || typeof c.random.int !== 'function') throw new ConfigError('random (a RandomSource) is required');
  positiveInt('electionTicks', c.electionTicks);
  positiveInt('heartbeatTicks', c.heartbeatTicks);
  if (c.electionTicks <= c.heartbeatTicks) {
    throw new ConfigError(`electionTicks (${c.electionTicks}) must be greater than heartbeatTicks (${c.heartbeatTicks})`);
  }
  positiveInt('maxBytesPerAppend', c.maxBytesPerAppend);
  positiveInt('maxInflightMessages', c.maxInflightMessages);
  if (!Number.isInteger(c.maxInflightBytes) || c.maxInflightBytes < 0) {
    throw new ConfigError(`maxInflightBytes must be a non-negative integer (got ${String(c.maxInflightBytes)})`);
  }
  if (c.maxInflightBytes > 0 && c.maxInflightBytes < c.maxBytesPerAppend) {
    throw new ConfigError(`maxInflightBytes (${c.maxInflightBytes}) must be 0 or at least maxBytesPerAppend (${c.maxBytesPerAppend})`);
  }
  positiveInt('maxUncommittedBytes', c.maxUncommittedBytes);
  positiveInt('maxCommittedBytesPerReady', c.maxCommittedBytesPerReady);
  if (c.applied !== undefined && (!Number.isInteger(c.applied) || c.applied < 0)) {
    throw new ConfigError(`applied must be a non-negative integer (got ${String(c.applied)})`);
  }
  if (typeof c.preVote !== 'boolean') throw new ConfigError('preVote must be a boolean');
  if (typeof c.checkQuorum !== 'boolean') throw new ConfigError('checkQuorum must be a boolean');
}
