// Small files written durably in a directory: the identity files of a data directory (through
// fsIdentityFiles, the production IdentityFiles) and the dev cluster's secret.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { IdentityFiles } from './host-world.js';

/** Writes `text` to dir/name durably (temporary file + fsync + rename + fsync of the directory). */
export function writeDurably(dir: string, name: string, text: string, mode = 0o644): void {
  const tmp = join(dir, `${name}.tmp`);
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, name));
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** The identity files of the data directory `dir`. */
export function fsIdentityFiles(dir: string): IdentityFiles {
  return {
    read: (name) => {
      const f = join(dir, name);
      return existsSync(f) ? readFileSync(f, 'utf8') : null;
    },
    writeDurably: (name, text) => writeDurably(dir, name, text),
    describe: (name) => join(dir, name),
  };
}
