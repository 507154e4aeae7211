"""Schedule of recurring jobs, for ``manage.py rqcron worker.cron``."""

from django.conf import settings
from rq import cron

from worker.jobs import send_due_reminders

cron.register(
    send_due_reminders,
    settings.DASHIFY_JOB_QUEUE,
    interval=settings.DASHIFY_REMINDER_INTERVAL,
)
