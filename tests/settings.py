"""
Settings for the test suite: the project's settings with development
secrets allowed and a key prefix of the suite's own, so that a shared
Redis keeps test keys apart from anything else stored in it.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DASHIFY_REDIS_KEY_PREFIX", "dashify-test")
os.environ.setdefault("DASHIFY_LOG_LEVEL", "DEBUG")
os.environ.setdefault("DASHIFY_JOB_QUEUE", "dashify-test")

from dashify.settings import *  # noqa: E402, F403
