ALTER TABLE "deployments" ADD COLUMN "health_mode" text;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "backend_tls_server_name" text;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "backend_tls_ca_pem" text;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "backend_tls_insecure_skip_verify" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "deployments" ADD CONSTRAINT "deployments_health_mode_ck" CHECK ("deployments"."health_mode" is null or "deployments"."health_mode" in ('grpc', 'http'));