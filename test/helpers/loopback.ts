import type { AddressInfo } from "node:net";

/** An HTTP(S) server as tests start it: `server.listen` + `closeAllConnections` (node:http and node:https alike). */
interface ClosableServer {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): AddressInfo | string | null;
  closeAllConnections(): void;
  close(cb: () => void): unknown;
}

/** Listens on 127.0.0.1 on a free port; `close()` drops open connections and waits for the server to stop. */
export async function listenOnLoopback(server: ClosableServer): Promise<{ port: number; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
