import { NotFound } from "../../db/errors.js";
import { getRevision, revisionRange } from "../../db/repo/revisions.js";
import { decompress } from "../../provider/revisions.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";

/** A revision that is not there: never recorded, or pruned (REVISION_RETENTION). */
export async function missingRevision(deps: Deps, n: number): Promise<HttpProblem> {
  const { oldest, newest } = await revisionRange(deps.handle.db);
  const pruned = oldest !== null && newest !== null && n < oldest;
  return new HttpProblem(
    problem(
      "REVISION_NOT_FOUND",
      pruned
        ? `Revision ${n} was pruned: only the newest ${deps.config.REVISION_RETENTION} revisions are kept (REVISION_RETENTION); the oldest kept is ${oldest}.`
        : `No revision ${n}${newest === null ? "" : `; the newest is ${newest}`}.`,
    ),
  );
}

/** Reads a revision's JSON bytes, mapping an unknown number to a problem that says whether it was pruned. */
export async function revisionJson(deps: Deps, n: number): Promise<Buffer> {
  try {
    return await decompress((await getRevision(deps.handle.db, n)).body);
  } catch (err) {
    throw err instanceof NotFound ? await missingRevision(deps, n) : err;
  }
}
