// Config validation: every limit is checked once, at construction, with a typed error that
// names the field. A node must never start with limits that make no sense.
import { describe, expect, it } from 'vitest';
import { ConfigError, MemoryStorage, RawNode, defaultConfig, validateConfig, type Config } from '../src/index.js';

function config(over: Partial<Record<keyof Config, unknown>> = {}): Config {
  return {
    ...defaultConfig,
    id: 'n1',
    storage: new MemoryStorage({ confState: { voters: ['n1'], learners: [] } }),
    random: { int: () => 0 },
    ...over,
  } as Config;
}

function errorOf(c: Config): ConfigError {
  try {
    validateConfig(c);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected validateConfig to throw');
}

describe('Config validation', () => {
  it('accepts the defaults', () => {
    expect(() => validateConfig(config())).not.toThrow();
  });

  const cases: Array<[string, Partial<Record<keyof Config, unknown>>, RegExp]> = [
    ['empty id', { id: '' }, /id must be a non-empty string/],
    ['non-string id', { id: 7 }, /id must be a non-empty string/],
    ['missing storage', { storage: undefined }, /storage is required/],
    ['missing random', { random: undefined }, /random/],
    ['random without int()', { random: {} }, /random/],
    ['zero electionTicks', { electionTicks: 0 }, /electionTicks must be a positive integer \(got 0\)/],
    ['fractional heartbeatTicks', { heartbeatTicks: 1.5 }, /heartbeatTicks must be a positive integer/],
    ['electionTicks not above heartbeatTicks', { electionTicks: 3, heartbeatTicks: 3 }, /electionTicks \(3\) must be greater than heartbeatTicks \(3\)/],
    ['zero maxBytesPerAppend', { maxBytesPerAppend: 0 }, /maxBytesPerAppend must be a positive integer/],
    ['zero maxInflightMessages', { maxInflightMessages: 0 }, /maxInflightMessages must be a positive integer/],
    ['negative maxInflightBytes', { maxInflightBytes: -1 }, /maxInflightBytes must be a non-negative integer/],
    [
      'maxInflightBytes below maxBytesPerAppend',
      { maxInflightBytes: 100, maxBytesPerAppend: 200 },
      /maxInflightBytes \(100\) must be 0 or at least maxBytesPerAppend \(200\)/,
    ],
    ['zero maxUncommittedBytes', { maxUncommittedBytes: 0 }, /maxUncommittedBytes must be a positive integer/],
    ['NaN maxCommittedBytesPerReady', { maxCommittedBytesPerReady: Number.NaN }, /maxCommittedBytesPerReady must be a positive integer/],
    ['negative applied', { applied: -1 }, /applied must be a non-negative integer/],
    ['string preVote', { preVote: 'yes' }, /preVote must be a boolean/],
    ['missing checkQuorum', { checkQuorum: undefined }, /checkQuorum must be a boolean/],
  ];
  for (const [name, over, message] of cases) {
    it(`rejects ${name}`, () => {
      const e = errorOf(config(over));
      expect(e.code).toBe('QKV_INVALID_CONFIG');
      expect(e.message).toMatch(message);
    });
  }

  it('allows maxInflightBytes = 0 (no byte limit)', () => {
    expect(() => validateConfig(config({ maxInflightBytes: 0 }))).not.toThrow();
  });

  it('is enforced by the RawNode constructor', () => {
    expect(() => new RawNode(config({ heartbeatTicks: 20 }))).toThrow(ConfigError);
  });
});
