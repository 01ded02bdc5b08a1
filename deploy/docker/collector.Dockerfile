# logward-collector image: FROM scratch, no registry (P3, P10). Assembled by build-image.sh.
# Run it hardened as docs/DEPLOY.md and deploy/docker/run-collector.sh show:
# --cap-drop ALL, no-new-privileges, --read-only, limits, Docker's log dir read-only.
FROM scratch
COPY rootfs/ /
# Checkpoints: mount a volume here (not tmpfs), so they survive a restart (P9).
COPY state/ /var/lib/logward-collector/
# uid 0 *without any capability* (the run recipe drops them all and sets
# no-new-privileges): the only identity that can list Docker's 0710 root:root
# directories and read its 0600 config.v2.json. docs/DEPLOY.md has the proof that no
# non-root user can, and the residual risk.
USER 0:0
WORKDIR /var/lib/logward-collector
ENV LOGWARD_STATE_DIR=/var/lib/logward-collector \
    LOGWARD_DOCKER_DIR=/var/lib/docker/containers \
    LOGWARD_NO_JOURNALD=true
ENTRYPOINT ["/usr/local/bin/logward-collector"]
