CREATE TABLE "config_revisions" (
	"revision" bigserial PRIMARY KEY NOT NULL,
	"hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"cause" text NOT NULL,
	"actor" text,
	"detail" text,
	"summary" jsonb NOT NULL,
	"body" "bytea" NOT NULL,
	"bytes" integer NOT NULL,
	"held" boolean DEFAULT false NOT NULL,
	"confirmed_at" timestamp with time zone,
	"confirmed_by" text,
	"first_served_at" timestamp with time zone,
	"last_served_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "routing_freeze" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"revision" bigint NOT NULL,
	"reason" text NOT NULL,
	"actor" text,
	"frozen_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "routing_freeze_single_ck" CHECK ("routing_freeze"."id" = 1)
);
--> statement-breakpoint
CREATE UNIQUE INDEX "config_revisions_hash_uq" ON "config_revisions" USING btree ("hash");--> statement-breakpoint
-- A preview runs the proposed writes in a transaction it rolls back, with SET LOCAL obiente.preview = 'on': no
-- NOTIFY (it would be dropped anyway) and no step of the change sequence (nextval is not transactional, so a
-- rolled-back preview would otherwise make every instance re-render).
CREATE OR REPLACE FUNCTION "obiente_routing_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('obiente.preview', true), '') = 'on' THEN
    RETURN NULL;
  END IF;
  PERFORM nextval('routing_change_seq');
  PERFORM pg_notify('obiente_routing', '');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
-- A freeze, its release, and the confirmation of a held revision change what every instance serves.
CREATE TRIGGER "routing_freeze_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "routing_freeze"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
CREATE TRIGGER "config_revisions_confirmed" AFTER UPDATE OF "confirmed_at" ON "config_revisions"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
