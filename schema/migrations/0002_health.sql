CREATE TABLE "location_health_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"location_id" text NOT NULL,
	"deployment_id" text NOT NULL,
	"from_status" text NOT NULL,
	"to_status" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"reason" text NOT NULL,
	"source" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "next_probe_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "probe_lease_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "probe_lease_owner" text;--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD COLUMN "last_failure_report_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "health_path" text;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "health_interval_seconds" integer;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "health_timeout_seconds" integer;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "health_expected_status" text;--> statement-breakpoint
ALTER TABLE "location_health_events" ADD CONSTRAINT "location_health_events_location_id_deployment_locations_id_fk" FOREIGN KEY ("location_id") REFERENCES "public"."deployment_locations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "location_health_events_location_idx" ON "location_health_events" USING btree ("location_id","at");--> statement-breakpoint
CREATE INDEX "deployment_locations_due_idx" ON "deployment_locations" USING btree ("next_probe_at");