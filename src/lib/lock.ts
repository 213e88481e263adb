import { randomBytes } from "node:crypto";
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { hostname, uptime } from "node:os";

/** Who holds a lock file (its JSON content). */
export interface LockHolder {
  pid: number;
  host: string;
  /** Kernel boot id (Linux) or boot time: a pid from another boot is dead whatever it says. */
  boot: string;
  since: string;
  token: string;
}

export interface FolderLock {
  readonly path: string;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): void;
}

/** Refused because another live process holds the lock; the message names it and the way out. */
export class LockHeld extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder,
    hint: string,
  ) {
    super(`${path} is held by pid ${holder.pid} on ${holder.host} since ${holder.since}. ${hint}`);
    this.name = "LockHeld";
  }
}

/** A lock from another host counts as abandoned once its heartbeat is this old (its pid cannot be checked). */
export const FOREIGN_LOCK_STALE_MS = 30_000;
const HEARTBEAT_MS = 10_000;
const held = new Set<string>(); // lock paths this process holds: a second open in one process is refused too

/** Kernel boot id (Linux), else the boot time to the minute. */
export function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    // Not Linux: boot time to the minute (uptime drifts by milliseconds between reads).
    return `boot-${Math.round((Date.now() / 1000 - uptime()) / 60)}`;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

function readHolder(path: string): { holder: LockHolder | undefined; raw: string; mtimeMs: number } | undefined {
  let raw: string;
  let mtimeMs: number;
  try {
    raw = readFileSync(path, "utf8");
    mtimeMs = statSync(path).mtimeMs; // the heartbeat: the holder's last sign of life
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return undefined;
    }
    throw err;
  }
  try {
    const h = JSON.parse(raw) as Partial<LockHolder>;
    if (typeof h.pid === "number" && typeof h.host === "string" && typeof h.boot === "string") {
      return { holder: h as LockHolder, raw, mtimeMs };
    }
  } catch {
    // half-written or foreign content: treated as stale below
  }
  return { holder: undefined, raw, mtimeMs };
}

/** Why a recorded holder no longer holds the lock, or undefined when it may still be alive. */
function staleReason(h: LockHolder | undefined, mtimeMs: number, now: number): string | undefined {
  if (!h) {
    return "unreadable lock file";
  }
  if (h.host !== hostname()) {
    // Another machine or container sharing the volume: no pid to check, so the heartbeat decides.
    return now - mtimeMs > FOREIGN_LOCK_STALE_MS ? "no heartbeat from another host" : undefined;
  }
  if (h.boot !== bootId()) {
    return "left by an earlier boot";
  }
  if (h.pid === process.pid) {
    // Our own pid but not held by us: a container restarted with the same pid (often 1).
    return "left by an earlier run with this pid";
  }
  return isAlive(h.pid) ? undefined : "its process is gone";
}

/**
 * Takes an exclusive lock file (created with O_EXCL) naming this process; a lock left by a dead process is
 * taken over. Throws LockHeld, whose message ends with `hint`, when a live process holds it.
 */
export function acquireFolderLock(path: string, hint: string): FolderLock {
  if (held.has(path)) {
    throw new LockHeld(
      path,
      { pid: process.pid, host: hostname(), boot: bootId(), since: "earlier in this process", token: "" },
      hint,
    );
  }
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    boot: bootId(),
    since: new Date().toISOString(),
    token: randomBytes(8).toString("hex"),
  };
  const body = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (createExclusive(path, body)) {
      return hold(path, body);
    }
    const found = readHolder(path);
    if (!found) {
      continue; // released meanwhile: try again
    }
    if (!staleReason(found.holder, found.mtimeMs, Date.now())) {
      throw new LockHeld(path, found.holder as LockHolder, hint);
    }
    takeOver(path, found.raw);
  }
  throw new Error(`${path}: could not take the lock (other processes keep racing for it)`);
}

/**
 * Creates `path` holding `body`, or returns false if it exists. The content is written to a private file (O_EXCL)
 * first and then hard-linked into place: link() is as exclusive as O_EXCL and the lock never appears half-written
 * to a contender reading it.
 */
function createExclusive(path: string, body: string): boolean {
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString("hex")}`;
  const fd = openSync(tmp, "wx", 0o644);
  try {
    writeSync(fd, body);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      return false;
    }
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * Moves a stale lock aside atomically (rename: only one contender wins). If what was moved is not the content
 * judged stale (someone took the lock between our read and the rename), it is put back with link(), which never
 * overwrites.
 */
function takeOver(path: string, staleRaw: string): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return;
    }
    throw err;
  }
  try {
    if (readFileSync(aside, "utf8") !== staleRaw) {
      try {
        linkSync(aside, path);
      } catch {
        // a third process already created a new lock: it is the holder now
      }
    }
  } finally {
    unlinkSync(aside);
  }
}

function hold(path: string, body: string): FolderLock {
  held.add(path);
  const heartbeat = setInterval(() => {
    try {
      const t = new Date();
      utimesSync(path, t, t);
    } catch {
      // the file is gone or not ours any more: release() sorts it out
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();
  let released = false;
  const release = () => {
    if (released) {
      return;
    }
    released = true;
    clearInterval(heartbeat);
    held.delete(path);
    process.removeListener("exit", release);
    try {
      if (readFileSync(path, "utf8") === body) {
        unlinkSync(path);
      }
    } catch {
      // already gone
    }
  };
  process.on("exit", release); // a normal exit or process.exit(); a SIGKILL leaves a stale lock, taken over later
  return { path, release };
}
