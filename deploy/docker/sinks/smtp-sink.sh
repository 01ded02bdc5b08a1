#!/bin/sh
# Example SMTP sink for deploy/compose.yml, run per connection by `nc -ll -p 2525 -e`.
# Speaks just enough SMTP (no TLS, no AUTH) for logward's `tls = "plain"` email channel,
# accepts every message and prints it to stderr (the container's log) line by line, so
# the alert mails become searchable in logward itself. Relays nothing. Not for production.
cr=$(printf '\r')
reply() { printf '%s\r\n' "$1"; }
log() { echo "smtp-sink: $1" >&2; }
reply "220 smtp-sink ESMTP example sink"
in_data=0
while IFS= read -r line; do
  line=${line%"$cr"}
  if [ "$in_data" = 1 ]; then
    if [ "$line" = "." ]; then
      in_data=0
      log "end of message"
      reply "250 2.0.0 accepted"
    else
      log "| $line"
    fi
    continue
  fi
  case "$line" in
    EHLO* | ehlo*) printf '250-smtp-sink\r\n250 8BITMIME\r\n' ;;
    HELO* | helo*) reply "250 smtp-sink" ;;
    MAIL* | mail* | RCPT* | rcpt*) log "$line"; reply "250 2.1.0 ok" ;;
    DATA* | data*) in_data=1; reply "354 end data with <CR><LF>.<CR><LF>" ;;
    QUIT* | quit*) reply "221 2.0.0 bye"; exit 0 ;;
    RSET* | rset* | NOOP* | noop*) reply "250 2.0.0 ok" ;;
    *) reply "502 5.5.2 command not implemented" ;;
  esac
done
