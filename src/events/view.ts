import type { EventRow } from "../../schema/tables.js";

/** An event as GET /api/v1/events, the SSE stream and webhook bodies show it. */
export interface EventJson {
  id: number;
  at: string;
  type: string;
  deployment_id: string | null;
  subject: string | null;
  data: Record<string, unknown>;
}

export const eventJson = (e: EventRow): EventJson => ({
  id: Number(e.id),
  at: e.at.toISOString(),
  type: e.type,
  deployment_id: e.deploymentId,
  subject: e.subject,
  data: e.data,
});
