class RedisUnavailable(Exception):
    """Redis could not be reached; the request cannot be served safely."""
