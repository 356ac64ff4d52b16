import { describe, expect, it } from 'vitest';
import { main, parseCli } from '../src/sim-cli.js';
import { replayCommand, runSeed } from '@quorumkv/testkit';

describe('sim-cli', () => {
  it('parses options and refuses bad ones with the usage', () => {
    expect(parseCli(['--seeds', '10', '--seed', '5', '--nodes', '5', '--bug', 'double-vote'])).toMatchObject({
      seeds: 10,
      seed: 5,
      nodes: 5,
      steps: 400,
      bug: 'double-vote',
      profile: 'default',
      verbose: false,
    });
    expect(() => parseCli(['--nodes', '4'])).toThrow(/--nodes must be 3 or 5/);
    expect(() => parseCli(['--bug', 'nope'])).toThrow(/unknown --bug/);
    expect(() => parseCli(['--profile', 'nope'])).toThrow(/unknown --profile/);
    expect(() => parseCli(['--seeds', '-1'])).toThrow(/usage/);
  });

  it('passes clean seeds with exit code 0 and prints totals', () => {
    let out = '';
    expect(main(['--seeds', '3', '--seed', '1'], (s) => (out += s))).toBe(0);
    expect(out).toMatch(/done: 3 seeds from 1 .*0 failed/);
    expect(out).toMatch(/writes acked/);
  });

  it('on a failure prints the seed, the invariant, the trace and one replay command, and exits 1', () => {
    let out = '';
    expect(main(['--seeds', '20', '--seed', '1', '--bug', 'double-vote'], (s) => (out += s))).toBe(1);
    const m = /replay: (pnpm sim --seeds 1 --seed (\d+) .*--bug double-vote --verbose)/.exec(out);
    expect(m, out).not.toBeNull();
    expect(out).toMatch(/invariant: election-safety/);
    expect(out).toMatch(/last events:\nt=/);
    // The replay command reproduces exactly that failure.
    const seed = Number(m![2]);
    let replay = '';
    expect(main(['--seeds', '1', '--seed', String(seed), '--bug', 'double-vote'], (s) => (replay += s))).toBe(1);
    const lastEvents = (s: string) => s.slice(s.indexOf('FAILED'));
    expect(lastEvents(replay)).toBe(lastEvents(out));
  });

  it('a seed is a complete description of a run: two runs are identical', () => {
    const a = runSeed({ seed: 77, nodes: 5, bug: 'no-log-check-vote' });
    const b = runSeed({ seed: 77, nodes: 5, bug: 'no-log-check-vote' });
    expect(b).toEqual(a);
    expect(replayCommand(a.run)).toBe('pnpm sim --seeds 1 --seed 77 --nodes 5 --steps 400 --bug no-log-check-vote --verbose');
  });
});
