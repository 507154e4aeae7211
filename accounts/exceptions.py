from dashify.exceptions import RedisUnavailable

__all__ = ["RedisUnavailable"]
