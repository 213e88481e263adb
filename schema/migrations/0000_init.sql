CREATE TABLE "deployment_locations" (
	"id" text PRIMARY KEY NOT NULL,
	"deployment_id" text NOT NULL,
	"node_id" text DEFAULT '' NOT NULL,
	"node_hostname" text DEFAULT '' NOT NULL,
	"address" text NOT NULL,
	"port" integer,
	"container_id" text DEFAULT '' NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"health_status" text DEFAULT 'unknown' NOT NULL,
	"cpu_usage" real,
	"cpu_updated_at" timestamp with time zone,
	"consecutive_successes" integer DEFAULT 0 NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"last_check_at" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deployment_locations_port_ck" CHECK ("deployment_locations"."port" is null or "deployment_locations"."port" between 1 and 65535),
	CONSTRAINT "deployment_locations_health_ck" CHECK ("deployment_locations"."health_status" in ('unknown', 'healthy', 'unhealthy')),
	CONSTRAINT "deployment_locations_status_ck" CHECK ("deployment_locations"."status" in ('running', 'starting', 'stopping', 'stopped', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "deployment_routing" (
	"id" text PRIMARY KEY NOT NULL,
	"deployment_id" text NOT NULL,
	"domain" text NOT NULL,
	"path_prefix" text DEFAULT '/' NOT NULL,
	"target_port" integer NOT NULL,
	"protocol" text DEFAULT 'http' NOT NULL,
	"load_balancer_algo" text DEFAULT 'round-robin' NOT NULL,
	"ssl_enabled" boolean DEFAULT true NOT NULL,
	"ssl_cert_resolver" text DEFAULT 'letsencrypt' NOT NULL,
	"is_primary" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deployment_routing_port_ck" CHECK ("deployment_routing"."target_port" between 1 and 65535),
	CONSTRAINT "deployment_routing_protocol_ck" CHECK ("deployment_routing"."protocol" in ('http', 'https', 'h2c')),
	CONSTRAINT "deployment_routing_algo_ck" CHECK ("deployment_routing"."load_balancer_algo" in ('round-robin', 'least-conn', 'ip-hash'))
);
--> statement-breakpoint
CREATE TABLE "deployments" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deployment_locations" ADD CONSTRAINT "deployment_locations_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD CONSTRAINT "deployment_routing_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deployment_locations_deployment_idx" ON "deployment_locations" USING btree ("deployment_id");--> statement-breakpoint
CREATE UNIQUE INDEX "deployment_routing_domain_path_uq" ON "deployment_routing" USING btree ("domain","path_prefix");--> statement-breakpoint
CREATE UNIQUE INDEX "deployment_routing_primary_uq" ON "deployment_routing" USING btree ("deployment_id") WHERE "deployment_routing"."is_primary";--> statement-breakpoint
CREATE INDEX "deployment_routing_deployment_idx" ON "deployment_routing" USING btree ("deployment_id");