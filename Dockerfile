# fkrollout worker, CLI (fkrollout, built from ./starter) and demo seeder.
# Used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what the worker logs at start (and carries in its Temporal
# identity) and what fkrollout version prints, e.g.
# docker build --build-arg VERSION=$(git describe --always --dirty) .
# (.git is not in the build context, so the image cannot work it out itself).
ARG VERSION=
RUN CGO_ENABLED=1 go build -trimpath -ldflags "${VERSION:+-X main.version=$VERSION}" -o /out/ ./worker ./scripts/demodb \
 && CGO_ENABLED=1 go build -trimpath -ldflags "${VERSION:+-X main.buildVersion=$VERSION}" -o /out/fkrollout ./starter

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
# The worker needs no privileges: it runs as an unprivileged user that owns
# only the backup and report directory (a new volume inherits that owner).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin fkrollout \
 && mkdir -p /var/backups/fkrollout/reports \
 && chown -R fkrollout /var/backups/fkrollout
WORKDIR /app
ENV FKROLLOUT_BACKUP_DIR=/var/backups/fkrollout \
    FKROLLOUT_REPORT_DIR=/var/backups/fkrollout/reports
VOLUME /var/backups/fkrollout
USER 10001
ENTRYPOINT ["worker"]
