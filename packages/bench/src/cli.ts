#!/usr/bin/env node
// `quorumkv-bench run|compare|failover`: the benchmark harness of quorumkv (see docs/benchmarks.md).
import { runCompare } from './compare.js';
import { runFailoverCommand } from './failover.js';
import { UsageError, parseCompareOptions, parseFailoverOptions, parseRunOptions } from './options.js';
import { killAllTracked } from './procs.js';
import { formatRun } from './report.js';
import { runBenchmark } from './run.js';
import { formatRow, parseWatchBenchOptions, runWatchBench } from './watch-bench.js';
import { runTlsCost } from './tls-cost.js';

const USAGE = `usage: node packages/bench/dist/cli.js <command> [flags]

commands:
  run        one workload against one target (default)
  compare    quorumkv and etcd alternately (A, B, A, B), ratio table
  failover   kill -9 the leader under a put load, N rounds; --soak: leader changes under steady load
  watch      N watchers on one prefix on one node under a steady put rate: delivery latency from
             the write's acknowledgement, events/s, node RSS per watcher
             (--target quorumkv[,etcd] --watchers 1,100,10000 --seconds 10 --rate 50 --value-size 64 --json)
  tls-cost   quorumkv puts without and with TLS alternately (--reps pairs), ops/s table and ratio

workload flags (all commands):
  --target quorumkv|etcd     system under test (run; default quorumkv)
  --clients C                closed-loop workers in total (default 64; failover 16)
  --seconds D                measurement length (default 10)
  --value-size K             value bytes (default 256)
  --keys KS                  keyspace, keys bench/0000000000.. chosen uniformly (default 10000)
  --op put|get|mixed|txn     operation (default put); get/mixed/txn prefill every key first; txn =
                             a two-key transfer (both keys compared, both written) in one transaction
  --read-ratio R             gets in mixed, 0..1 (default 0.5)
  --consistency linearizable|stale   reads (default linearizable; etcd: stale = serializable)
  --procs P                  generator processes, histograms merged (default 1)
  --rate N                   total ops/s limit (default 0 = unlimited closed loop)
  --op-timeout MS            deadline per operation, retries included (default 5000; failover 1000)
  --error-backoff MS         pause after a failed operation (default 0; failover 10)
  --etcd-retry               keep the etcd3 client's retry/circuit-breaker policies (default off)
  --endpoints A,B,C          run only: use a running cluster instead of starting one
  --json                     one JSON line on stdout (progress still on stderr)
  --quiet                    no progress lines
  --keep-data                keep the temporary data directories and node logs
  --server-cli PATH          quorumkv CLI (default packages/server/dist/cli.js)
  --etcd-bin PATH            etcd binary (default: etcd on PATH)
  --server-args "..."        extra flags for every quorumkv node (e.g. "--log-level warn")
  --etcd-args "..."          extra flags for every etcd member
  --tls                      quorumkv: TLS on every link (dev certificates; clients over wss)
  --node-args="..."          flags for node running each quorumkv node, e.g.
                             --node-args="--cpu-prof --cpu-prof-dir /tmp/prof" (profiles at stop;
                             values starting with a dash need the = form)

compare flags:
  --reps N                   repetitions of each A, B pair (default 2)
  --workloads put,get        workloads: put (C=64, 256 B), get (linearizable, C=64), mixed

failover flags:
  --target quorumkv|etcd     (default quorumkv)
  --rounds N                 kills (default 10)
  --restart-after S          seconds from kill to restart of the killed node (default 3)
  --warmup S / --settle S    load before the first kill / after catch-up (default 3 / 2)
  --soak                     no kills: run --minutes M at --rate N (default: --peak-fraction 0.8
                             of a 10 s peak measurement) and report leader changes from /metrics`;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  const cmd = first === undefined || first.startsWith('--') ? 'run' : first;
  const args = cmd === first ? rest : argv;
  if (args.includes('--help') || args.includes('-h') || cmd === 'help') {
    console.log(USAGE);
    return 0;
  }
  switch (cmd) {
    case 'run': {
      const o = parseRunOptions(args);
      const r = await runBenchmark(o);
      console.log(o.json ? JSON.stringify(r) : formatRun(r));
      return 0;
    }
    case 'compare':
      return runCompare(parseCompareOptions(args));
    case 'failover':
      return runFailoverCommand(parseFailoverOptions(args));
    case 'watch': {
      const o = parseWatchBenchOptions(args);
      const rows = await runWatchBench(o, (line) => console.error(line));
      console.log(o.json ? JSON.stringify(rows) : rows.map(formatRow).join('\n'));
      return 0;
    }
    case 'tls-cost':
      return runTlsCost(parseCompareOptions(args));
    default:
      throw new UsageError(`unknown command ${cmd}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    killAllTracked();
    process.exit(code);
  },
  (e: unknown) => {
    killAllTracked();
    if (e instanceof UsageError) {
      console.error(`bench: ${e.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
