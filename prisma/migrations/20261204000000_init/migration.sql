-- CreateTable
CREATE TABLE "Tenant" (
    "id" VARCHAR(63) NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "status" VARCHAR(16) NOT NULL DEFAULT 'active',
    "tokenTtl" INTEGER NOT NULL DEFAULT 300,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Tenant_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "SigningKey" (
    "tenantId" VARCHAR(63) NOT NULL,
    "kid" VARCHAR(64) NOT NULL,
    "alg" VARCHAR(16) NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "publicJwk" JSONB NOT NULL,
    "privateJwkEnc" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "activatedAt" TIMESTAMPTZ(3),
    "retiredAt" TIMESTAMPTZ(3),
    "publishUntil" TIMESTAMPTZ(3),
    "revokedAt" TIMESTAMPTZ(3),

    CONSTRAINT "SigningKey_pkey" PRIMARY KEY ("tenantId","kid")
);

-- CreateTable
CREATE TABLE "Client" (
    "tenantId" VARCHAR(63) NOT NULL,
    "id" VARCHAR(64) NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "kind" VARCHAR(16) NOT NULL DEFAULT 'service',
    "authMethod" VARCHAR(32) NOT NULL,
    "secretHash" TEXT,
    "jwks" JSONB,
    "scopes" TEXT[],
    "grantTypes" TEXT[],
    "tokenTtl" INTEGER,
    "status" VARCHAR(16) NOT NULL DEFAULT 'active',
    "secretRotatedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Client_pkey" PRIMARY KEY ("tenantId","id")
);

-- CreateTable
CREATE TABLE "Resource" (
    "tenantId" VARCHAR(63) NOT NULL,
    "id" VARCHAR(64) NOT NULL,
    "uri" VARCHAR(2048) NOT NULL,
    "scopes" TEXT[],
    "tokenTtl" INTEGER,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Resource_pkey" PRIMARY KEY ("tenantId","id")
);

-- CreateTable
CREATE TABLE "ClientResource" (
    "tenantId" VARCHAR(63) NOT NULL,
    "clientId" VARCHAR(64) NOT NULL,
    "resourceId" VARCHAR(64) NOT NULL,

    CONSTRAINT "ClientResource_pkey" PRIMARY KEY ("tenantId","clientId","resourceId")
);

-- CreateIndex
CREATE INDEX "SigningKey_tenantId_status_idx" ON "SigningKey"("tenantId", "status");

-- CreateIndex
CREATE UNIQUE INDEX "Client_tenantId_name_key" ON "Client"("tenantId", "name");

-- CreateIndex
CREATE UNIQUE INDEX "Resource_tenantId_uri_key" ON "Resource"("tenantId", "uri");

-- CreateIndex
CREATE INDEX "ClientResource_tenantId_resourceId_idx" ON "ClientResource"("tenantId", "resourceId");

-- AddForeignKey
ALTER TABLE "SigningKey" ADD CONSTRAINT "SigningKey_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Client" ADD CONSTRAINT "Client_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Resource" ADD CONSTRAINT "Resource_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ClientResource" ADD CONSTRAINT "ClientResource_tenantId_clientId_fkey" FOREIGN KEY ("tenantId", "clientId") REFERENCES "Client"("tenantId", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ClientResource" ADD CONSTRAINT "ClientResource_tenantId_resourceId_fkey" FOREIGN KEY ("tenantId", "resourceId") REFERENCES "Resource"("tenantId", "id") ON DELETE CASCADE ON UPDATE CASCADE;
