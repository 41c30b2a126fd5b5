"""``segql dispatch``: deliver history changes to the destinations ``[[actions]]`` name.

Modules, one job each: ``actions`` (the ``[[actions]]`` of segql.toml, checked),
``payloads`` (records, properties with traits, ``body`` templates), ``senders`` (webhook
over httpx, files), ``destinations`` (Resend, Meta custom audiences, warehouse tables),
``dispatcher`` (cursor, deliveries, retries, parked changes) and ``commands`` (the entry
points). Delivery is at least once, and ``event_id`` is every payload's idempotency key.
"""

from __future__ import annotations

from segql.downstream.dispatch.actions import Action, FileTarget, Service, Webhook, parse_actions
from segql.downstream.dispatch.commands import (
    main,
    run_dispatch,
    run_resync,
    run_retry_failed,
    run_status,
)
from segql.downstream.dispatch.dispatcher import Dispatcher
from segql.downstream.dispatch.payloads import payload
from segql.downstream.dispatch.senders import (
    FileWriter,
    Outcome,
    WebhookSender,
    backoff_delay,
    repair_tail,
    retry_after,
)

__all__ = [
    "Action", "Dispatcher", "FileTarget", "FileWriter", "Outcome", "Service", "Webhook",
    "WebhookSender", "backoff_delay", "main", "parse_actions", "payload", "repair_tail",
    "retry_after", "run_dispatch", "run_resync", "run_retry_failed", "run_status",
]  # fmt: skip
