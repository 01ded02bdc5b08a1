#!/bin/sh
# Example webhook sink for deploy/compose.yml (busybox httpd CGI at /cgi-bin/hook): prints
# each POST body with its logward signature header to the container's log, where logward
# collects it, and answers 204. Checks nothing. Not for production.
body=$(head -c "${CONTENT_LENGTH:-0}")
echo "webhook-sink: ${REQUEST_METHOD:-?} signature=${HTTP_X_LOGWARD_SIGNATURE:-none} bytes=${CONTENT_LENGTH:-0} body=$body" >/proc/1/fd/2
printf 'Status: 204 No Content\r\n\r\n'
