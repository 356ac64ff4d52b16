// @quorumkv/protocol — the wire types, msgpack codec and error codes shared by the server and
// the client. Browser-safe: no Node-only imports anywhere in this package.

export * from './errors.js';
export * from './error-wire.js';
export * from './wire.js';
export * from './validate.js';
export * from './codec.js';
export * from './service.js';
export * from './bytes.js';
export * from './deadline-sweep.js';
/** msgpack primitives of the direct frame encoders (used by @quorumkv/client's put frames). */
export * from './msgpack-direct.js';
/** The direct reader of the usual request frames, exported for the fuzzers' differential check (@quorumkv/fuzz). */
export { fastDecodeRequest } from './fast-request.js';
