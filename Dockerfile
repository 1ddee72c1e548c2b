# Bulkhead container image.
#
#   docker build -t bulkhead .
#   docker run -p 8080:8080 -e PUBLIC_URL=https://auth.example.com -v bulkhead-data:/var/lib/bulkhead/data \
#     -v bulkhead-keys:/var/lib/bulkhead/keys bulkhead                      # serve (the default command)
#   docker run ... bulkhead migrate                                          # apply migrations and exit
#
# Set PUBLIC_URL to the URL clients reach the broker at: every tenant's issuer (`iss`) is derived
# from it, and its default (http://localhost:$PORT) is only right for local use. Without
# DATABASE_URL the embedded PGlite database lives in the data volume (one replica only).

############################ build: install everything, generate, compile, prune
FROM node:22-bookworm-slim AS build
WORKDIR /app
# No Prisma telemetry or update checks; nothing here may need the network beyond the npm registry.
ENV CHECKPOINT_DISABLE=1 \
    PRISMA_HIDE_UPDATE_MESSAGE=1 \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false

COPY package.json package-lock.json ./
# --ignore-scripts: the image's npm is 10.x, which ignores package.json `allowScripts` (an npm 11
# feature) and would run every dependency's install script, among them @prisma/engines'
# postinstall, which downloads engine binaries (never wanted: Bulkhead needs no Prisma engine), and
# the `node` devDependency's preinstall, which fetches a second Node 22 this image already has.
# No runtime dependency needs an install script (@node-rs/argon2 ships its binary as an optional
# dependency package). The one script that is needed, the root `postinstall`
# (`PRISMA_SCHEMA_ENGINE_BINARY=/bin/true prisma generate`), runs explicitly below, once the
# schema is in place.
RUN npm ci --ignore-scripts

COPY tsconfig.json prisma.config.ts ./
COPY prisma ./prisma
COPY src ./src
# The generated client goes to src/generated/prisma and is compiled into dist/generated/prisma;
# at run time it needs only @prisma/client's runtime (a dependency), not the prisma CLI.
RUN npm run postinstall && npm run build

# Production dependencies only. `npm prune --omit=dev` drops devDependencies but keeps packages
# that are *both* dev and optional ("devOptional" in the lockfile): the prisma CLI, typescript and
# their trees stay because @prisma/client declares them as optional peers. They are removed here by
# the lockfile's own flag (~376 MB → ~122 MB of node_modules), with the .bin links left dangling.
RUN npm prune --omit=dev --ignore-scripts \
 && node -e ' \
      const fs = require("node:fs"); \
      const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8")); \
      for (const [p, meta] of Object.entries(lock.packages)) \
        if (p && meta.devOptional) fs.rmSync(p, { recursive: true, force: true }); \
    ' \
 && find node_modules/.bin -xtype l -delete \
 && test ! -e node_modules/prisma && test ! -e node_modules/typescript && test ! -e node_modules/node \
 && test -d node_modules/@prisma/client && test -d node_modules/@node-rs/argon2

############################ runtime: Node 22, production dependencies, compiled code
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/var/lib/bulkhead/data \
    KEYS_DIR=/var/lib/bulkhead/keys \
    HOST=0.0.0.0 \
    PORT=8080

# A dedicated unprivileged user owns only the state directories; the code stays root-owned and
# read-only to it. The directories are created (and chowned) before VOLUME declares them, so a
# fresh named volume starts with this ownership; keys/ is 0700, and Bulkhead writes master.key and
# admin-credentials.json in it with mode 0600.
RUN groupadd --system --gid 10001 bulkhead \
 && useradd --system --uid 10001 --gid bulkhead --home-dir /var/lib/bulkhead --shell /usr/sbin/nologin bulkhead \
 && mkdir -p /var/lib/bulkhead/data /var/lib/bulkhead/keys \
 && chown -R bulkhead:bulkhead /var/lib/bulkhead \
 && chmod 0700 /var/lib/bulkhead/data /var/lib/bulkhead/keys

WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The migrator reads ../../prisma/migrations relative to dist/db/, i.e. /app/prisma/migrations.
COPY --from=build /app/prisma/migrations ./prisma/migrations

USER bulkhead
VOLUME ["/var/lib/bulkhead/data", "/var/lib/bulkhead/keys"]
EXPOSE 8080

# Liveness through the broker's own /healthz; the slim image has no curl, so Node does the fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# `serve` handles SIGTERM/SIGINT itself (closes connections and the database), so Node can be PID 1.
ENTRYPOINT ["node", "dist/cli/bin.js"]
CMD ["serve"]
