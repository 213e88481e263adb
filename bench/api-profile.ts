/**
 * CPU profiles for bench/api.ts: the server process records one per phase through node:inspector (so a profile
 * covers exactly one phase, not the server's start or the data fill), and the bench prints where the time went.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";

interface CallFrame {
  functionName: string;
  url: string;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

/** The part of a `.cpuprofile` (Chrome DevTools format) the summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** Records one profile at a time in this process. */
export class PhaseProfiler {
  private session: Session | undefined;

  async start(): Promise<void> {
    if (!this.session) {
      this.session = new Session();
      this.session.connect();
      await this.session.post("Profiler.enable");
    }
    await this.session.post("Profiler.start");
  }

  /** Stops the running profile and writes it to `file` (open it in Chrome DevTools or speedscope). */
  async stop(file: string): Promise<void> {
    if (!this.session) {
      throw new Error("PhaseProfiler: stop() without start()");
    }
    const { profile } = await this.session.post("Profiler.stop");
    writeFileSync(file, JSON.stringify(profile));
  }

  close(): void {
    this.session?.disconnect();
    this.session = undefined;
  }
}

/** Where a frame lives, short: `src/render/render.ts`, `node_modules/postgres`, `node:zlib`, `(garbage collector)`. */
function placeOf(frame: CallFrame): string {
  const url = frame.url;
  if (!url) {
    // V8's pseudo-frames ((garbage collector), (program), (idle)) and native builtins without a script.
    return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  }
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/");
    const pkg = rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? "");
    return `node_modules/${pkg}`;
  }
  for (const root of ["/src/", "/schema/", "/bench/"]) {
    const at = url.lastIndexOf(root);
    if (at >= 0) {
      return url.slice(at + 1);
    }
  }
  return url.replace(/^file:\/\//, "");
}

/**
 * A function's name and where it is: `toJson src/render/serialize.ts`, `is drizzle-orm/entity.js`,
 * `stringify (native)`. Line numbers are left out: tsx hands V8 transformed code, so they would point nowhere.
 */
function functionOf(frame: CallFrame, place: string): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) {
    return frame.functionName.startsWith("(") ? frame.functionName : `${name} (native)`;
  }
  const modules = frame.url.lastIndexOf("/node_modules/");
  return `${name} ${modules >= 0 ? frame.url.slice(modules + "/node_modules/".length) : place}`;
}

/** Self time per function and per place (file or package), largest first, from a profile's samples. */
export function summarizeProfile(profile: CpuProfile): { total: number; byFunction: SelfTime[]; byPlace: SelfTime[] } {
  const frames = new Map<number, CallFrame>(profile.nodes.map((n) => [n.id, n.callFrame]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; the time after sample i (until i+1) belongs to sample i.
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    const us = deltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, us));
  }
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = frames.get(id);
    if (!frame) {
      continue;
    }
    const place = placeOf(frame);
    const fn = functionOf(frame, place);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
    total += us;
  }
  const ranked = (m: Map<string, number>): SelfTime[] =>
    [...m]
      .map(([name, us]) => ({ name, ms: us / 1000, share: total > 0 ? us / total : 0 }))
      .sort((a, b) => b.ms - a.ms);
  return { total: total / 1000, byFunction: ranked(byFunction), byPlace: ranked(byPlace) };
}
