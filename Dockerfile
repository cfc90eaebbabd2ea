# syntax=docker/dockerfile:1
# tideline's images, for docker-compose.yml:
#   default target  the tideline binary (migrate, collect, ingest, evaluate, trigger, demo)
#   --target plugin the Grafana plugin directory (frontend + gpx_tideline backend),
#                   copied into a volume that Grafana mounts as the plugin.

FROM golang:1.26-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Grafana runs <executable>_<os>_<arch> from plugin.json's "executable": gpx_tideline.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -o /out/tideline ./cmd/tideline \
 && CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -o /out/plugin/gpx_tideline_${TARGETOS}_${TARGETARCH} ./cmd/gpx_tideline

FROM node:20-bookworm AS frontend
WORKDIR /app
COPY grafana/app/package.json grafana/app/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY grafana/app/ ./
# webpack loads its TypeScript config through ts-node, which on Node 20 needs
# CommonJS resolution (see scripts/grafana-frontend.sh).
ENV TS_NODE_COMPILER_OPTIONS='{"module":"commonjs","moduleResolution":"node"}'
RUN npm run build

FROM alpine:3.22 AS plugin
COPY --from=frontend /app/dist/ /plugin/
COPY --from=build /out/plugin/ /plugin/
# Replaces the volume's content on every start, so a rebuilt image is what Grafana loads.
CMD ["sh", "-c", "rm -rf /target/* && cp -a /plugin/. /target/ && ls /target"]

FROM alpine:3.22 AS tideline
RUN apk add --no-cache ca-certificates tzdata
COPY --from=build /out/tideline /usr/local/bin/tideline
USER 65534:65534
ENTRYPOINT ["tideline"]
CMD ["--help"]
