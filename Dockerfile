# The image docker-compose.yml builds for the api, worker and migrate services.
FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY migrations ./migrations
# Workers load the workflow code prebuilt, instead of running webpack at every start.
RUN npx tsx src/main.ts bundle --out /app/workflow-bundle.js
ENV WORKFLOW_BUNDLE=/app/workflow-bundle.js
# The file result store writes here; a volume mounted on it keeps the owner.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
CMD ["npx", "tsx", "src/main.ts", "api"]
