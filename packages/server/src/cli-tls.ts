// The client commands' TLS flags (`--cacert`, `--cert`, `--key`, env QKV_CACERT/QKV_CERT/QKV_KEY):
// read once into the options of an HTTPS request (node-fetch.ts). Server names are verified.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError } from './config.js';

/** The flags, for `parseArgs`. */
export const CLI_TLS_FLAGS = { cacert: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' } } as const;

/** The CLI's TLS options from --cacert/--cert/--key (or QKV_CACERT/QKV_CERT/QKV_KEY); undefined without any. */
export function cliTls(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv = process.env): ConnectionOptions | undefined {
  const pick = (flag: string) => {
    const v = values[flag] ?? env[`QKV_${flag.toUpperCase()}`];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const [ca, cert, key] = [pick('cacert'), pick('cert'), pick('key')];
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError('--cert and --key go together (a client certificate needs its key)');
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new ConfigError(`--${flag}: cannot read ${file}: ${(e as Error).message}`);
    }
  };
  return {
    ...(ca !== undefined ? { ca: read('cacert', ca) } : {}),
    ...(cert !== undefined && key !== undefined ? { cert: read('cert', cert), key: read('key', key) } : {}),
  };
}

