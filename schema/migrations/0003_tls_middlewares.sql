CREATE TABLE "certificates" (
	"id" text PRIMARY KEY NOT NULL,
	"cert_pem" text NOT NULL,
	"key_encrypted" text NOT NULL,
	"subject" text NOT NULL,
	"issuer" text NOT NULL,
	"sans" jsonb NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"fingerprint_sha256" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "deployment_middlewares" (
	"deployment_id" text PRIMARY KEY NOT NULL,
	"config" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deployment_routing" ADD COLUMN "tls_include_apex" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "deployment_middlewares" ADD CONSTRAINT "deployment_middlewares_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "certificates_fingerprint_uq" ON "certificates" USING btree ("fingerprint_sha256");