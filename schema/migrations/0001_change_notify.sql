-- Change feed for rendered routing state. Every change that can alter the Traefik config bumps a sequence
-- (non-transactional, so concurrent writers never queue on one row) and sends NOTIFY obiente_routing, which
-- PostgreSQL delivers at commit and collapses to one message per transaction. Instances LISTEN for it and
-- also poll the sequence as a safety net. CPU readings and probe timestamps do not fire it: they never
-- change the config bytes.
CREATE SEQUENCE IF NOT EXISTS "routing_change_seq";
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "obiente_routing_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('routing_change_seq');
  PERFORM pg_notify('obiente_routing', '');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER "deployment_routing_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "deployment_routing"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
CREATE TRIGGER "deployment_locations_changed_ins_del" AFTER INSERT OR DELETE OR TRUNCATE ON "deployment_locations"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
CREATE TRIGGER "deployment_locations_changed_upd" AFTER UPDATE ON "deployment_locations"
  FOR EACH ROW WHEN (
    OLD.health_status IS DISTINCT FROM NEW.health_status
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.address IS DISTINCT FROM NEW.address
    OR OLD.port IS DISTINCT FROM NEW.port
    OR OLD.deployment_id IS DISTINCT FROM NEW.deployment_id
  ) EXECUTE FUNCTION "obiente_routing_changed"();
