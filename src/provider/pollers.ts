export interface PollRecord {
  node: string;
  lastPollAt: string;
  lastHash: string | undefined;
  polls: number;
  userAgent: string | undefined;
}

/** Remembers when each Traefik instance last polled, told apart by `X-Traefik-Node` or the remote address. */
export class PollTracker {
  private readonly byNode = new Map<string, PollRecord>();

  constructor(private readonly maxNodes = 1000) {}

  record(node: string, at: Date, hash: string | undefined, userAgent: string | undefined): void {
    const prev = this.byNode.get(node);
    if (!prev && this.byNode.size >= this.maxNodes) {
      return; // bounded: a flood of forged node names cannot grow memory
    }
    this.byNode.set(node, {
      node,
      lastPollAt: at.toISOString(),
      lastHash: hash,
      polls: (prev?.polls ?? 0) + 1,
      userAgent: userAgent?.slice(0, 200),
    });
  }

  list(): PollRecord[] {
    return [...this.byNode.values()].sort((a, b) => (a.node < b.node ? -1 : 1));
  }
}
