CREATE TABLE "deployment_rollouts" (
	"deployment_id" text PRIMARY KEY NOT NULL,
	"track" text NOT NULL,
	"steps" jsonb NOT NULL,
	"interval_seconds" integer NOT NULL,
	"abort_when" jsonb NOT NULL,
	"state" text NOT NULL,
	"step_index" integer DEFAULT 0 NOT NULL,
	"next_step_at" timestamp with time zone,
	"history" jsonb NOT NULL,
	"lease_owner" text,
	"lease_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "deployment_traffic" (
	"deployment_id" text PRIMARY KEY NOT NULL,
	"split" jsonb,
	"geo" jsonb,
	"resilience" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "track" text DEFAULT 'stable' NOT NULL;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "region" text;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "drain_started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "drain_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "drained_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_rollouts" ADD CONSTRAINT "deployment_rollouts_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "deployment_traffic" ADD CONSTRAINT "deployment_traffic_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deployment_rollouts_due_idx" ON "deployment_rollouts" USING btree ("next_step_at");--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD CONSTRAINT "deployment_locations_track_ck" CHECK ("deployment_locations"."track" ~ '^[a-z0-9][a-z0-9-]{0,31}$');--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD CONSTRAINT "deployment_locations_region_ck" CHECK ("deployment_locations"."region" is null or "deployment_locations"."region" ~ '^[a-z0-9][a-z0-9-]{0,31}$');--> statement-breakpoint
-- Traffic settings, tracks, regions and draining change the rendered config: same change feed as 0001.
CREATE TRIGGER "deployment_traffic_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "deployment_traffic"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
DROP TRIGGER "deployment_locations_changed_upd" ON "deployment_locations";
--> statement-breakpoint
CREATE TRIGGER "deployment_locations_changed_upd" AFTER UPDATE ON "deployment_locations"
  FOR EACH ROW WHEN (
    OLD.health_status IS DISTINCT FROM NEW.health_status
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.address IS DISTINCT FROM NEW.address
    OR OLD.port IS DISTINCT FROM NEW.port
    OR OLD.deployment_id IS DISTINCT FROM NEW.deployment_id
    OR OLD.track IS DISTINCT FROM NEW.track
    OR OLD.region IS DISTINCT FROM NEW.region
    OR OLD.drain_started_at IS DISTINCT FROM NEW.drain_started_at
    OR OLD.drain_until IS DISTINCT FROM NEW.drain_until
  ) EXECUTE FUNCTION "obiente_routing_changed"();
