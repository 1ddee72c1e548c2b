-- CreateTable
CREATE TABLE "AuditEvent" (
    "tenantId" VARCHAR(63) NOT NULL,
    "seq" BIGINT NOT NULL,
    "time" TIMESTAMPTZ(3) NOT NULL,
    "type" VARCHAR(64) NOT NULL,
    "outcome" VARCHAR(16) NOT NULL,
    "reason" VARCHAR(64),
    "actor" VARCHAR(200),
    "clientId" VARCHAR(200),
    "subject" VARCHAR(500),
    "jti" VARCHAR(64),
    "scopes" TEXT[],
    "audience" VARCHAR(2048),
    "requestId" VARCHAR(64),
    "clientIp" VARCHAR(64),
    "detail" JSONB,
    "prevHash" CHAR(64) NOT NULL,
    "hash" CHAR(64) NOT NULL,

    CONSTRAINT "AuditEvent_pkey" PRIMARY KEY ("tenantId","seq")
);

-- CreateTable
CREATE TABLE "AuditHead" (
    "tenantId" VARCHAR(63) NOT NULL,
    "seq" BIGINT NOT NULL,
    "hash" CHAR(64) NOT NULL,

    CONSTRAINT "AuditHead_pkey" PRIMARY KEY ("tenantId")
);

-- AddForeignKey
ALTER TABLE "AuditEvent" ADD CONSTRAINT "AuditEvent_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AuditHead" ADD CONSTRAINT "AuditHead_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- The trail is append-only: rows are inserted, never changed or removed (not by the broker, not by
-- a mistaken script). Someone able to disable this trigger can still edit rows; the hash chain is
-- what makes that visible (`bulkhead audit verify`).
CREATE FUNCTION "bulkhead_audit_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = '55000';
END
$$;

CREATE TRIGGER "AuditEvent_append_only" BEFORE UPDATE OR DELETE ON "AuditEvent"
    FOR EACH ROW EXECUTE FUNCTION "bulkhead_audit_append_only"();
CREATE TRIGGER "AuditEvent_no_truncate" BEFORE TRUNCATE ON "AuditEvent"
    FOR EACH STATEMENT EXECUTE FUNCTION "bulkhead_audit_append_only"();
