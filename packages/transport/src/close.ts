import { WebSocket } from 'ws';
import { fitCloseReason } from './close-codes.js';

/**
 * Sends a close frame with `code` and `reason`, and destroys the socket if the close handshake
 * has not finished within `graceMs` (a silent peer never answers it). Safe in any state.
 */
export function closeWithGrace(ws: WebSocket, code: number, reason: string, graceMs: number): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  if (ws.readyState === WebSocket.CONNECTING) {
    ws.terminate(); // no close frame can be sent before the upgrade completes
    return;
  }
  if (ws.readyState === WebSocket.OPEN) ws.close(code, fitCloseReason(reason));
  const timer = setTimeout(() => ws.terminate(), graceMs).unref();
  ws.once('close', () => clearTimeout(timer));
}
