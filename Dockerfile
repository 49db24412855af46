# The twinmart image: workers and reporting services of docker-compose.yml.
# Build stage: the full toolchain compiles TypeScript and bundles the workflow code.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
RUN npm run build

# Runtime stage: production dependencies and the build output only.
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY migrations ./migrations
COPY web ./web
COPY --from=build /app/dist ./dist
USER node
# A reporting container probes its own /health at TWINMART_HEALTH_URL, a worker its
# /metrics (compose gives each its URL); the one-shot start has none, since it serves no HTTP.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["node", "bin/healthcheck.js"]
CMD ["node", "bin/twinmart.js", "--help"]
