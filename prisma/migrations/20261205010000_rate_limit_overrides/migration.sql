-- AlterTable
ALTER TABLE "Tenant" ADD COLUMN     "rateLimitRps" INTEGER;

-- AlterTable
ALTER TABLE "Client" ADD COLUMN     "rateLimitRps" INTEGER;
