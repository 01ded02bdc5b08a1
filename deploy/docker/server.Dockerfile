# logward-server image: FROM scratch, no registry (P3, P10). Assembled by build-image.sh:
# rootfs/ holds the binary, its shared libraries, /etc/passwd and /etc/group.
# Run it hardened as docs/DEPLOY.md and deploy/docker/run-server.sh show.
FROM scratch
COPY rootfs/ /
# The data directory belongs to the unprivileged user; a named volume mounted here
# starts with this owner (P1). It must be a volume, not tmpfs: it holds the index.
COPY --chown=10001:10001 state/ /var/lib/logward/
# P1: never root.
USER 10001:10001
WORKDIR /var/lib/logward
ENV LOGWARD_DATA_DIR=/var/lib/logward
EXPOSE 7420 7421
ENTRYPOINT ["/usr/local/bin/logward-server"]
CMD ["--config", "/etc/logward/server.toml"]
