-- AlterTable
ALTER TABLE "Resource" ADD COLUMN     "requireDpop" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "Delegation" (
    "tenantId" VARCHAR(63) NOT NULL,
    "id" VARCHAR(64) NOT NULL,
    "agentTenantId" VARCHAR(63) NOT NULL,
    "agentId" VARCHAR(64) NOT NULL,
    "scopes" TEXT[],
    "tokenTtl" INTEGER,
    "expiresAt" TIMESTAMPTZ(3),
    "requireDpop" BOOLEAN NOT NULL DEFAULT false,
    "createdBy" VARCHAR(200) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" TIMESTAMPTZ(3),

    CONSTRAINT "Delegation_pkey" PRIMARY KEY ("tenantId","id")
);

-- CreateTable
CREATE TABLE "DelegationResource" (
    "tenantId" VARCHAR(63) NOT NULL,
    "delegationId" VARCHAR(64) NOT NULL,
    "resourceId" VARCHAR(64) NOT NULL,

    CONSTRAINT "DelegationResource_pkey" PRIMARY KEY ("tenantId","delegationId","resourceId")
);

-- CreateIndex
CREATE INDEX "Delegation_tenantId_agentId_idx" ON "Delegation"("tenantId", "agentId");

-- CreateIndex
CREATE INDEX "Delegation_agentTenantId_agentId_idx" ON "Delegation"("agentTenantId", "agentId");

-- CreateIndex
CREATE INDEX "DelegationResource_tenantId_resourceId_idx" ON "DelegationResource"("tenantId", "resourceId");

-- AddForeignKey
ALTER TABLE "Delegation" ADD CONSTRAINT "Delegation_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Delegation" ADD CONSTRAINT "Delegation_agentTenantId_agentId_fkey" FOREIGN KEY ("agentTenantId", "agentId") REFERENCES "Client"("tenantId", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "DelegationResource" ADD CONSTRAINT "DelegationResource_tenantId_delegationId_fkey" FOREIGN KEY ("tenantId", "delegationId") REFERENCES "Delegation"("tenantId", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "DelegationResource" ADD CONSTRAINT "DelegationResource_tenantId_resourceId_fkey" FOREIGN KEY ("tenantId", "resourceId") REFERENCES "Resource"("tenantId", "id") ON DELETE CASCADE ON UPDATE CASCADE;
