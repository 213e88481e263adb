-- Certificates, middlewares and deployment settings (health-check overrides feed Traefik's optional healthCheck)
-- change the rendered config too: same change feed as 0001.
CREATE TRIGGER "certificates_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "certificates"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
CREATE TRIGGER "deployment_middlewares_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "deployment_middlewares"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
--> statement-breakpoint
CREATE TRIGGER "deployments_changed" AFTER UPDATE ON "deployments"
  FOR EACH STATEMENT EXECUTE FUNCTION "obiente_routing_changed"();
