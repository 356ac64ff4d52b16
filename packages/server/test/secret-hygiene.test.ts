// Secret hygiene: the admin token check (constant-time, refuses missing / malformed / wrong
// tokens without echoing them) and the logger's redaction — the cluster secret and its admin
// token never reach a log line, whether as a known field, inside a message or inside an error.
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { adminAuthorization, adminToken, checkAdminAuthorization } from '@quorumkv/transport';
import { AdminAuthError, isAdminPath, requireAdminToken } from '../src/admin-auth.js';
import { REDACTED, createSinkLogger } from '../src/logger.js';

const SECRET = 'secret-hygiene-test-secret-0123456789';

function requestWith(authorization?: string): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  if (authorization !== undefined) req.headers.authorization = authorization;
  return req;
}

describe('the admin token', () => {
  it('is accepted only when derived from the same secret', () => {
    expect(checkAdminAuthorization(adminAuthorization(SECRET), SECRET)).toBeNull();
    expect(checkAdminAuthorization(`bearer ${adminToken(SECRET).toUpperCase()}`, SECRET)).toBeNull();
    expect(checkAdminAuthorization(adminAuthorization('another-secret-0123456789'), SECRET)).toBe('wrong');
    expect(checkAdminAuthorization(undefined, SECRET)).toBe('missing');
    expect(checkAdminAuthorization(`Bearer ${SECRET}`, SECRET)).toBe('malformed');
    expect(checkAdminAuthorization(`Basic ${adminToken(SECRET)}`, SECRET)).toBe('malformed');
    expect(checkAdminAuthorization(`Bearer ${adminToken(SECRET).slice(2)}`, SECRET)).toBe('malformed');
    expect(checkAdminAuthorization(['a', 'b'], SECRET)).toBe('malformed');
  });

  it('is not the secret itself', () => {
    expect(adminToken(SECRET)).not.toContain(SECRET);
    expect(adminToken(SECRET)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('guards every admin path and /v1/compact, and nothing else', () => {
    for (const p of ['/v1/admin/members', '/v1/admin/snapshot', '/v1/admin/leader/transfer', '/v1/admin/x', '/v1/compact']) expect(isAdminPath(p)).toBe(true);
    for (const p of ['/v1/kv/a', '/v1/status', '/health', '/metrics', '/v1/admin', '/v1/compactx', '/ui']) expect(isAdminPath(p)).toBe(false);
  });

  it('refuses with QKV_AUTH_FAILED and never repeats what was sent', () => {
    const wrong = adminAuthorization('another-secret-0123456789');
    for (const h of [undefined, 'Basic dXNlcjpwYXNz', `Bearer ${SECRET}`, wrong]) {
      let err: unknown;
      try {
        requireAdminToken(requestWith(h), SECRET);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AdminAuthError);
      expect((err as AdminAuthError).code).toBe('QKV_AUTH_FAILED');
      const msg = (err as Error).message;
      expect(msg).not.toContain(SECRET);
      expect(msg).not.toContain(adminToken(SECRET));
      expect(msg).not.toContain(wrong.slice(7));
      expect(msg).not.toContain('dXNlcjpwYXNz');
    }
    expect(() => requireAdminToken(requestWith(adminAuthorization(SECRET)), SECRET)).not.toThrow();
  });
});

describe('log redaction', () => {
  it('keeps the secret and its admin token out of every line', () => {
    const lines: string[] = [];
    const log = createSinkLogger('n1', 'debug', (l) => lines.push(l), [SECRET, adminToken(SECRET)]);
    log.info({ clusterSecret: SECRET }, 'config field');
    log.info({ cfg: { clusterSecret: SECRET, id: 'n1' } }, 'nested config field');
    log.warn({ headers: { authorization: 'Bearer some-user-token' } }, 'request headers');
    log.warn({ req: { headers: { authorization: 'Bearer other-token' } } }, 'nested request headers');
    log.info({ password: 'hunter2-hunter2', token: 'tok-123456789' }, 'credentials');
    log.error({ err: new Error(`could not use ${SECRET}`) }, 'an error that names the secret');
    log.info({}, `the admin token is ${adminToken(SECRET)}`);
    log.info({ quoted: `a "${SECRET}" b` }, `message with ${SECRET} inside`);
    expect(lines).toHaveLength(8);
    const all = lines.join('');
    for (const leaked of [SECRET, adminToken(SECRET), 'some-user-token', 'other-token', 'hunter2-hunter2', 'tok-123456789']) expect(all).not.toContain(leaked);
    expect(lines.every((l) => l.includes(REDACTED))).toBe(true);
    // Every line is still one JSON object.
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
  });

  it('leaves lines without secrets alone', () => {
    const lines: string[] = [];
    const log = createSinkLogger('n1', 'info', (l) => lines.push(l), [SECRET]);
    log.info({ peer: 'n2', term: 3 }, 'role changed');
    expect(JSON.parse(lines[0]!)).toMatchObject({ node: 'n1', peer: 'n2', term: 3, msg: 'role changed' });
  });
});
