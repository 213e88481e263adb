/**
 * Runs `pass` one at a time: a trigger while a pass runs asks for exactly one more pass after it (several coalesce
 * into one). `pass` returns true to ask for another pass itself (more work than one pass takes). Nothing starts
 * once `signal` aborted; `idle()` resolves when no pass runs.
 */
export function coalesced(
  pass: () => Promise<unknown>,
  signal: AbortSignal,
): { trigger(): void; idle(): Promise<void> } {
  let running: Promise<void> | undefined;
  let again = false;
  const trigger = () => {
    if (signal.aborted) {
      return;
    }
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        again = (await pass()) === true || again;
      } while (again && !signal.aborted);
    })().finally(() => {
      running = undefined;
    });
  };
  return { trigger, idle: async () => running };
}
