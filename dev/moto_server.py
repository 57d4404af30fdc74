#!/usr/bin/env python3
"""moto server, with one fix: moto 5.2.5's SQS loses messages under concurrency.

``Queue.delete_message`` rebuilds the queue's message list without holding the queue's lock,
while ``Queue.add_message`` (SendMessage, and EventBridge delivering to a queue) appends under
it. A message sent while a delete is rebuilding the list is appended to the old list and
dropped when the new one replaces it. Real SQS loses nothing; the local stack runs senders
(the emitter, EventBridge's rule) and deleters (the worker) at the same time, so it must not
either. Holding the lock for the delete closes the race (found by reading moto's code while
chasing a chaos-run failure, whose actual cause was elsewhere); everything else is moto as
pinned.

Usage: the same arguments as ``moto_server`` (``-H 127.0.0.1 -p PORT``).
"""

from __future__ import annotations

import functools

import moto.sqs.models as sqs_models
from moto.server import main

_delete_message = sqs_models.Queue.delete_message


@functools.wraps(_delete_message)
def _locked_delete_message(self, receipt_handle):  # type: ignore[no-untyped-def]
    with self._messages_lock:
        return _delete_message(self, receipt_handle)


sqs_models.Queue.delete_message = _locked_delete_message

if __name__ == "__main__":
    main()
