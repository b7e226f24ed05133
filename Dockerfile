# fkrollout worker, starter and demo seeder. Used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/ ./worker ./starter ./scripts/demodb

# pg_dump must be at least the server's major version (backups): 15, as the
# postgres:15 service of docker-compose.yml. bash (part of every Debian
# image) serves the compose health check; there is no curl or wget.
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
