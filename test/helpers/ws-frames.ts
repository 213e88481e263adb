import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";

// A minimal RFC 6455 server side for test replicas: the handshake answer, and reading the small masked frames
// test clients send (payloads under 126 bytes). Nothing here is meant for real traffic.

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Writes the `101 Switching Protocols` answer to a client's `Sec-WebSocket-Key`. */
export function acceptUpgrade(socket: Duplex, key: string): void {
  const accept = createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
}

/** A server frame (unmasked, under 126 bytes) with the given opcode (0x1 text). */
export function serverFrame(payload: Buffer | string, opcode = 0x1): Buffer {
  const bytes = Buffer.from(payload);
  return Buffer.concat([Buffer.from([0x80 | opcode, bytes.length]), bytes]);
}

/** Calls `onFrame` for each client frame other than Close; answers a Close frame with one and ends the socket. */
export function readClientFrames(socket: Duplex, onFrame: (payload: Buffer, opcode: number) => void): void {
  let buf = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 6) {
      const opcode = (buf[0] ?? 0) & 0x0f;
      const len = (buf[1] ?? 0) & 0x7f;
      if (buf.length < 6 + len) {
        return;
      }
      const mask = buf.subarray(2, 6);
      const payload = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ (mask[i % 4] ?? 0)));
      buf = buf.subarray(6 + len);
      if (opcode === 0x8) {
        socket.end(Buffer.from([0x88, 0]));
        return;
      }
      onFrame(payload, opcode);
    }
  });
}
