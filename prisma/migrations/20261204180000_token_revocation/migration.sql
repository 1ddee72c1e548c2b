-- CreateTable
CREATE TABLE "RevokedToken" (
    "tenantId" VARCHAR(63) NOT NULL,
    "jti" VARCHAR(64) NOT NULL,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "revokedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RevokedToken_pkey" PRIMARY KEY ("tenantId","jti")
);

-- CreateTable
CREATE TABLE "TokenCutoff" (
    "tenantId" VARCHAR(63) NOT NULL,
    "clientId" VARCHAR(64) NOT NULL,
    "notBefore" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "TokenCutoff_pkey" PRIMARY KEY ("tenantId","clientId")
);

-- CreateIndex
CREATE INDEX "RevokedToken_expiresAt_idx" ON "RevokedToken"("expiresAt");

-- AddForeignKey
ALTER TABLE "RevokedToken" ADD CONSTRAINT "RevokedToken_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TokenCutoff" ADD CONSTRAINT "TokenCutoff_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;
