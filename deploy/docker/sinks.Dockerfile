# Example alert sinks for deploy/compose.yml: a static busybox with an SMTP sink
# (`nc -ll -e /bin/smtp-sink`) and a webhook sink (`httpd` + /www/cgi-bin/hook). They
# print what they receive to the container's log, which logward collects. Not for
# production: they accept everything and relay nothing.
FROM scratch
COPY rootfs/ /
USER 10002:10002
WORKDIR /www
CMD ["/bin/httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
