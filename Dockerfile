# fkrollout worker, starter and demo seeder. Used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The worker prints its version at start and carries it in its Temporal
# identity: docker build --build-arg VERSION=$(git describe --tags --dirty).
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/ ./worker ./starter ./scripts/demodb

# pg_dump must be at least the server's major version (backups): 15, as the
# postgres:15 service of docker-compose.yml. bash (part of every Debian
# image) is all the shell there is; there is no curl or wget: the compose
# health check is the worker's own -probe.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
COPY sql/ /app/sql/
WORKDIR /app
ENV FKROLLOUT_BACKUP_DIR=/var/backups/fkrollout \
    FKROLLOUT_REPORT_DIR=/var/backups/fkrollout/reports
VOLUME /var/backups/fkrollout
ENTRYPOINT ["worker"]
