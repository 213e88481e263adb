-- The change feed names what changed (issue 16: a change costs what it changes). Row-level triggers on every table
-- keyed by deployment send NOTIFY obiente_routing with payload `d:<deployment id>` (PostgreSQL drops a duplicate
-- payload within one transaction, so a bulk write of one deployment's rows is one message); an instance re-reads only
-- those deployments' rows. The freeze and confirmations send `c` (what is served is re-decided, nothing re-rendered).
-- Everything else (certificates, TRUNCATE) keeps the empty payload: re-read everything. Every kind still steps
-- routing_change_seq, the pollers' safety net, and a preview (SET LOCAL obiente.preview = on) still sends nothing.
CREATE OR REPLACE FUNCTION "obiente_deployment_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  new_id text;
  old_id text;
BEGIN
  IF coalesce(current_setting('obiente.preview', true), '') = 'on' THEN
    RETURN NULL;
  END IF;
  PERFORM nextval('routing_change_seq');
  IF TG_OP <> 'DELETE' THEN
    new_id := to_jsonb(NEW) ->> TG_ARGV[0];
    PERFORM pg_notify('obiente_routing', 'd:' || new_id);
  END IF;
  IF TG_OP <> 'INSERT' THEN
    old_id := to_jsonb(OLD) ->> TG_ARGV[0];
    IF old_id IS DISTINCT FROM new_id THEN
      PERFORM pg_notify('obiente_routing', 'd:' || old_id);
    END IF;
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "obiente_control_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('obiente.preview', true), '') = 'on' THEN
    RETURN NULL;
  END IF;
  PERFORM nextval('routing_change_seq');
  PERFORM pg_notify('obiente_routing', 'c');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
DROP TRIGGER "deployment_routing_changed" ON "deployment_routing";
--> statement-breakpoint
CREATE TRIGGER "deployment_routing_changed" AFTER INSERT OR UPDATE OR DELETE ON "deployment_routing"
  FOR EACH ROW EXECUTE FUNCTION "obiente_deployment_changed"('deployment_id');
--> statement-breakpoint
CREATE TRIGGER "deployment_routing_truncated" AFTER TRUNCATE ON "deployment_routing"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
DROP TRIGGER "deployment_locations_changed_ins_del" ON "deployment_locations";
--> statement-breakpoint
CREATE TRIGGER "deployment_locations_changed_ins_del" AFTER INSERT OR DELETE ON "deployment_locations"
  FOR EACH ROW EXECUTE FUNCTION "obiente_deployment_changed"('deployment_id');
--> statement-breakpoint
CREATE TRIGGER "deployment_locations_truncated" AFTER TRUNCATE ON "deployment_locations"
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
  ) EXECUTE FUNCTION "obiente_deployment_changed"('deployment_id');
--> statement-breakpoint
DROP TRIGGER "deployment_middlewares_changed" ON "deployment_middlewares";
--> statement-breakpoint
CREATE TRIGGER "deployment_middlewares_changed" AFTER INSERT OR UPDATE OR DELETE ON "deployment_middlewares"
  FOR EACH ROW EXECUTE FUNCTION "obiente_deployment_changed"('deployment_id');
--> statement-breakpoint
CREATE TRIGGER "deployment_middlewares_truncated" AFTER TRUNCATE ON "deployment_middlewares"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
DROP TRIGGER "deployment_traffic_changed" ON "deployment_traffic";
--> statement-breakpoint
CREATE TRIGGER "deployment_traffic_changed" AFTER INSERT OR UPDATE OR DELETE ON "deployment_traffic"
  FOR EACH ROW EXECUTE FUNCTION "obiente_deployment_changed"('deployment_id');
--> statement-breakpoint
CREATE TRIGGER "deployment_traffic_truncated" AFTER TRUNCATE ON "deployment_traffic"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
DROP TRIGGER "deployments_changed" ON "deployments";
--> statement-breakpoint
CREATE TRIGGER "deployments_changed" AFTER UPDATE ON "deployments"
  FOR EACH ROW EXECUTE FUNCTION "obiente_deployment_changed"('id');
--> statement-breakpoint
DROP TRIGGER "routing_freeze_changed" ON "routing_freeze";
--> statement-breakpoint
CREATE TRIGGER "routing_freeze_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "routing_freeze"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_control_changed"();
--> statement-breakpoint
DROP TRIGGER "config_revisions_confirmed" ON "config_revisions";
--> statement-breakpoint
CREATE TRIGGER "config_revisions_confirmed" AFTER UPDATE OF "confirmed_at" ON "config_revisions"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_control_changed"();
