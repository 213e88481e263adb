CREATE TABLE "api_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"hash" text NOT NULL,
	"prefix" text NOT NULL,
	"scopes" jsonb NOT NULL,
	"deployment_ids" jsonb,
	"deployment_prefix" text,
	"expires_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text,
	"revoked_at" timestamp with time zone,
	"revoked_by" text
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"token_id" text,
	"token_name" text,
	"client_address" text,
	"request_id" text,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"operation" text NOT NULL,
	"resource_type" text NOT NULL,
	"resource_id" text,
	"deployment_id" text,
	"status" integer NOT NULL,
	"changes" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"type" text NOT NULL,
	"deployment_id" text,
	"subject" text,
	"data" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"webhook_id" text NOT NULL,
	"event_id" bigint NOT NULL,
	"attempt" integer NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"status_code" integer,
	"ok" boolean NOT NULL,
	"error" text,
	"duration_ms" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhooks" (
	"id" text PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"events" jsonb NOT NULL,
	"secret_encrypted" text NOT NULL,
	"cursor" bigint DEFAULT 0 NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone,
	"lease_owner" text,
	"lease_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text
);
--> statement-breakpoint
DROP INDEX "deployment_routing_domain_path_uq";--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "verification" text DEFAULT 'verified' NOT NULL;--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "verification_token" text;--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "verification_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "verification_next_check_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "verification_attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "verified_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_webhooks_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."webhooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_hash_uq" ON "api_tokens" USING btree ("hash");--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "audit_log_deployment_idx" ON "audit_log" USING btree ("deployment_id","id");--> statement-breakpoint
CREATE INDEX "audit_log_token_idx" ON "audit_log" USING btree ("token_id","id");--> statement-breakpoint
CREATE INDEX "events_type_idx" ON "events" USING btree ("type","id");--> statement-breakpoint
CREATE INDEX "events_deployment_idx" ON "events" USING btree ("deployment_id","id");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_webhook_idx" ON "webhook_deliveries" USING btree ("webhook_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "deployment_routing_deployment_domain_path_uq" ON "deployment_routing" USING btree ("deployment_id","domain","path_prefix");--> statement-breakpoint
CREATE INDEX "deployment_routing_pending_idx" ON "deployment_routing" USING btree ("verification_next_check_at") WHERE "deployment_routing"."verification" = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "deployment_routing_domain_path_uq" ON "deployment_routing" USING btree ("domain","path_prefix") WHERE "deployment_routing"."verification" = 'verified';--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD CONSTRAINT "deployment_routing_verification_ck" CHECK ("deployment_routing"."verification" in ('pending', 'verified'));--> statement-breakpoint
-- New events wake every instance's SSE streams and webhook deliverers (the payload is empty: they read by id).
CREATE OR REPLACE FUNCTION "obiente_events_added"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('obiente_events', '');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER "events_added" AFTER INSERT ON "events" FOR EACH STATEMENT EXECUTE FUNCTION "obiente_events_added"();
