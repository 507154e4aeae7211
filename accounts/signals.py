from django.dispatch import Signal

# Sent after a session stopped existing under its key, with ``user_id``,
# ``binding`` (accounts.services.session_binding of the key) and ``reason``
# (an accounts.services.EndReason). The realtime app closes the sockets
# that session opened.
session_ended = Signal()
