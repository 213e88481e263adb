/** A field a write changed, as the audit log shows it (secrets as "<redacted>"). */
export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/** What a handler says about its write (the middleware fills in who, when, where from). */
export interface AuditNote {
  resourceType: string;
  resourceId?: string | null;
  deploymentId?: string | null;
  changes?: FieldChange[];
}
