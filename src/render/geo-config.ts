import { z } from "zod";
import { HeaderName } from "./middlewares.js";
import { TrackName } from "./split-config.js";

// A deployment's geographic routing as stored (deployment_traffic.geo): the API validates input into this shape and
// the renderer validates it again (rows can be edited by hand), so everything that reaches a Traefik rule — the
// header name and the country codes — has passed these checks twice.

/** A region label (same form as deployment_locations.region). */
export const RegionName = TrackName;

/**
 * The officially assigned ISO 3166-1 alpha-2 codes (249, as published by the ISO 3166 Maintenance Agency). A fixed
 * table rather than `Intl.DisplayNames`: ICU also names user-assigned and reserved codes (`XK`, `EU`, `UN`, `EZ`, `AC`,
 * `IC`, …) and its data changes with the Node version, which would make validation — and so rendering — depend on
 * the runtime. CDN pseudo-codes such as Cloudflare's `XX` (unknown) and `T1` (Tor) are not countries: such requests
 * go to the default region.
 */
export const COUNTRY_CODES: ReadonlySet<string> = new Set(
  (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
    "CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
    "GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO " +
    "JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR " +
    "MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO " +
    "RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV " +
    "TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
  ).split(" "),
);

export const MAX_REGIONS = 50;
export const MAX_COUNTRIES = 250;

/** An upper-case, officially assigned ISO 3166-1 alpha-2 code. */
export const CountryCode = z
  .string()
  // abort: a malformed code gets one message, not a second "not assigned" one.
  .regex(/^[A-Z]{2}$/, { message: "an ISO 3166-1 alpha-2 code: two upper-case letters (e.g. DE)", abort: true })
  .refine((c) => COUNTRY_CODES.has(c), { error: (iss) => `${iss.input} is not an assigned ISO 3166-1 alpha-2 code` });

// zod reports a bad record key as "Invalid key in record"; surface the key schema's own reason instead.
const keyReason = {
  error: (iss: { code?: string; issues?: { message: string }[] }) =>
    iss.code === "invalid_key" ? iss.issues?.[0]?.message : undefined,
};

export const StoredGeo = z
  .strictObject({
    header: HeaderName.meta({
      description:
        "Request header carrying the client's ISO 3166-1 alpha-2 country, set by the CDN or load balancer in front " +
        "of Traefik (Cloudflare `CF-IPCountry`, CloudFront `CloudFront-Viewer-Country`). The name matches in any case; " +
        "the value must be the upper-case code, as CDNs send it. It must be set by a proxy that overwrites what " +
        "clients send; otherwise a client picks its own region.",
      example: "CF-IPCountry",
    }),
    regions: z.record(RegionName, z.array(CountryCode).max(MAX_COUNTRIES), keyReason).meta({
      description:
        "Region → the countries routed to it (upper-case ISO 3166-1 alpha-2; each country in at most one region). " +
        "A region with no countries is reached only as `default` or through `failover`. Replicas join a region " +
        'with `PUT …/locations/:id {"region": "eu"}`; replicas without a region are in none.',
      example: { eu: ["DE", "FR", "NL"], us: ["US", "CA"] },
    }),
    failover: z
      .record(RegionName, z.array(RegionName).max(MAX_REGIONS), keyReason)
      .meta({
        description:
          "Region → the regions that serve its requests, in order, while it has no healthy replica. Only declared " +
          "regions, never the region itself, no duplicates. Omitted: a region without healthy replicas answers 503.",
        example: { eu: ["us"], us: ["eu"] },
      })
      .optional(),
    default: RegionName.meta({
      description:
        "The region for requests without the header or with a country no region lists (with its failover order).",
      example: "eu",
    }),
  })
  .superRefine((geo, ctx) => {
    const declared = Object.keys(geo.regions);
    if (declared.length === 0) {
      ctx.addIssue({ code: "custom", path: ["regions"], message: "declare at least one region" });
    }
    if (declared.length > MAX_REGIONS) {
      ctx.addIssue({ code: "custom", path: ["regions"], message: `at most ${MAX_REGIONS} regions` });
    }
    const owner = new Map<string, string>();
    let total = 0;
    for (const [region, countries] of Object.entries(geo.regions)) {
      for (const [i, country] of countries.entries()) {
        total++;
        const first = owner.get(country);
        if (first !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["regions", region, i],
            message: first === region ? `${country} is listed twice` : `${country} is already in region ${first}`,
          });
        } else {
          owner.set(country, region);
        }
      }
    }
    if (total > MAX_COUNTRIES) {
      ctx.addIssue({ code: "custom", path: ["regions"], message: `at most ${MAX_COUNTRIES} countries in all` });
    }
    for (const [region, order] of Object.entries(geo.failover ?? {})) {
      if (!Object.hasOwn(geo.regions, region)) {
        ctx.addIssue({ code: "custom", path: ["failover", region], message: `${region} is not a declared region` });
      }
      const seen = new Set<string>();
      for (const [i, next] of order.entries()) {
        const message = !Object.hasOwn(geo.regions, next)
          ? `${next} is not a declared region`
          : next === region
            ? "a region cannot fail over to itself"
            : seen.has(next)
              ? `${next} is listed twice`
              : undefined;
        if (message) {
          ctx.addIssue({ code: "custom", path: ["failover", region, i], message });
        }
        seen.add(next);
      }
    }
    if (!Object.hasOwn(geo.regions, geo.default)) {
      ctx.addIssue({ code: "custom", path: ["default"], message: `${geo.default} is not a declared region` });
    }
  });
export type StoredGeo = z.infer<typeof StoredGeo>;

/** Why /routing/resolve chose a region for a country (filled in by geo routing). */
export interface GeoExplanation {
  /** The region the country maps to (or the default). */
  mapped: string;
  /**
   * The region whose router (`<name>--geo-<region>`, service `<name>--region-<region>`) takes the request; undefined:
   * the route's own router and service (no header, or a country no region lists).
   */
  routerRegion: string | undefined;
  /** The region whose replicas serve the request after failover; undefined when none has a healthy replica. */
  served: string | undefined;
  reason: string;
}
