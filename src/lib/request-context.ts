import { AsyncLocalStorage } from "node:async_hooks";

/** What every log line written while handling one request carries. */
export interface RequestContext {
  requestId: string;
}

const store = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` (and everything it starts) inside the request's context: the logger stamps its `requestId` on each line. */
export function withRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return store.run(ctx, fn);
}

/** The context of the request being handled, if any. */
export function requestContext(): RequestContext | undefined {
  return store.getStore();
}
