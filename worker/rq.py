"""The RQ worker class Dashify runs (settings.RQ["WORKER_CLASS"])."""

from rq import Worker as RQWorker

# How long shutdown waits for the pub/sub listener thread.
LISTENER_STOP_SECONDS = 1.0


class Worker(RQWorker):
    def unsubscribe(self) -> None:
        # rq 3.0's unsubscribe() calls PubSubWorkerThread.stop() without a
        # timeout, and redis-py 8 joins the thread for that long: when the
        # thread has already read the unsubscribe reply it sits in a
        # 60-second read, and the worker takes a minute to exit. Bound the
        # wait; retire this override once rq passes a timeout itself.
        if not self.pubsub_thread:
            return
        self.log.info(
            "Worker %s: unsubscribing from %s", self.name, self.pubsub_channel_name
        )
        self.pubsub.unsubscribe()
        self.pubsub_thread.stop(timeout=LISTENER_STOP_SECONDS)
        self.pubsub.close()
