"""Last line of defence against credentials in log records."""

import logging
import re

# A credential may reach a log line only through a bug (a library logging a
# full URL, an exception message quoting input). Scrub the shapes Dashify's
# credentials take: JWTs, token query parameters and cookie headers.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_QUERY_TOKEN = re.compile(r"(token=)[^&\s'\"]+", re.IGNORECASE)
# Not after a letter or hyphen, so that "reason=not-bearer path=..." stays.
_BEARER = re.compile(r"(?<![\w-])(Bearer\s+)\S+", re.IGNORECASE)
_COOKIE = re.compile(r"((?:session|csrftoken)[A-Za-z_]*=)[^;\s'\"]+", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Return ``text`` with anything credential-shaped replaced."""
    text = _JWT.sub(REDACTED, text)
    text = _QUERY_TOKEN.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    return _COOKIE.sub(rf"\1{REDACTED}", text)


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
