import { describe, expect, it } from "vitest";
import { parseRoutingNotice } from "../../src/db/change-feed.js";
import { silentLogger } from "../../src/lib/logger.js";
import { type ChangeEvents, type RefresherOptions, startRefresher } from "../../src/proxy/refresher.js";
import { waitFor } from "../helpers/app.js";

/** A refresher over recording loads; `feed` is what LISTEN would call. Ticks are far away unless given. */
async function recorded(over: Partial<RefresherOptions> = {}) {
  const log: string[] = [];
  let feed: ChangeEvents | undefined;
  const refresher = await startRefresher({
    reloadAll: async () => {
      log.push("all");
    },
    reloadDeployments: async (ids) => {
      log.push(`deployments ${[...ids].sort().join(",")}`);
    },
    refreshReadings: async () => {
      log.push("readings");
    },
    listen: async (events) => {
      feed = events;
      events.onConnect();
      return async () => {};
    },
    intervalMs: 600_000,
    fullIntervalMs: 600_000,
    debounceMs: 5,
    logger: silentLogger,
    ...over,
  });
  await waitFor(async () => log.length >= 1); // the full reload once LISTEN is in place
  const notify = (payload: string) => feed?.onNotice(parseRoutingNotice(payload));
  return { log, refresher, notify, feed: () => feed as ChangeEvents };
}

describe("the proxy table's refresher", () => {
  it("reloads everything once LISTEN is in place", async () => {
    const { log, refresher } = await recorded();
    expect(log).toEqual(["all"]);
    await refresher.stop();
  });

  it("coalesces notifications into one load of the deployments they named", async () => {
    const { log, refresher, notify } = await recorded();
    notify("d:dep_b");
    notify("d:dep_a");
    notify("d:dep_b");
    notify("c"); // a freeze or a confirmation: nothing for the proxy
    await waitFor(async () => log.length === 2);
    await refresher.refresh();
    expect(log).toEqual(["all", "deployments dep_a,dep_b", "all"]);
    await refresher.stop();
  });

  it("reloads everything for the empty payload, after a reconnect, and for a batch larger than maxBatch", async () => {
    const { log, refresher, notify, feed } = await recorded({ maxBatch: 2 });
    notify("");
    await waitFor(async () => log.length === 2);
    feed().onDisconnect();
    feed().onConnect();
    await waitFor(async () => log.length === 3);
    notify("d:a");
    notify("d:b");
    notify("d:c");
    await waitFor(async () => log.length === 4);
    expect(log).toEqual(["all", "all", "all", "all"]);
    await refresher.stop();
  });

  it("reads only CPU readings on the tick while following the feed", async () => {
    const { log, refresher } = await recorded({ intervalMs: 10 });
    await waitFor(async () => log.length >= 4);
    expect(log.slice(1, 4)).toEqual(["readings", "readings", "readings"]);
    await refresher.stop();
  });

  it("reloads everything on the tick without a feed, and after a load failed", async () => {
    let fail = true;
    const log: string[] = [];
    const polling = await startRefresher({
      reloadAll: async () => {
        log.push("all");
      },
      refreshReadings: async () => {
        log.push("readings");
      },
      intervalMs: 10,
      fullIntervalMs: 600_000,
      debounceMs: 5,
      logger: silentLogger,
    });
    await waitFor(async () => log.length >= 2);
    expect(log.slice(0, 2)).toEqual(["all", "all"]);
    await polling.stop();

    const {
      log: seen,
      refresher,
      notify,
    } = await recorded({
      intervalMs: 20,
      reloadDeployments: async () => {
        seen.push("deployments");
        if (fail) {
          fail = false;
          throw new Error("database unavailable");
        }
      },
    });
    notify("d:dep_a");
    await waitFor(
      async () => seen.includes("deployments") && seen.lastIndexOf("readings") > seen.indexOf("deployments"),
    );
    // The failed update is made good by a full reload before the tick goes back to readings.
    const failed = seen.indexOf("deployments");
    expect(seen.slice(failed, failed + 3)).toEqual(["deployments", "all", "readings"]);
    await refresher.stop();
  });
});
