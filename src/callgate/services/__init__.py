"""The operations the shells need (the API, the CLI, the dashboard to come), each owned by
one small service that the :class:`~callgate.gateway.Gateway` carries:

======================  ===========================================================
``gw.jobs``             list, show (attempts, events, audit), a summary per number
``gw.batches``          show, pause, resume, cancel, results and errors, page by page
``gw.guardrails``       allowlist, suppressions, the audit log's export and pruning
``gw.deliveries``       webhook deliveries: list, show, replay; the signing secrets
``gw.keys``             API keys: create, list, revoke, the first key (authenticating
                        a request is ``Gateway.authenticate``: look-ups grouped)
``gw.views``            what the dashboard reads: lines, the overview's counts and
                        activity, batches, a batch's rate over time
``gw.alerts``           alerts: open ones, their history, the state the rules read
======================  ===========================================================

A service wakes the workers itself when what it changed may have made something
claimable or sendable; no shell touches the store or imports :mod:`callgate.store`.
Submitting, cancelling and retrying jobs, the breaker and the providers stay on the
Gateway itself, as before.
"""

from callgate.services.alerts import AlertsService, alert_policy
from callgate.services.base import Service
from callgate.services.batches import BatchesService
from callgate.services.deliveries import DeliveriesService
from callgate.services.guardrails import GuardrailsService, allowlist_entry
from callgate.services.jobs import JobsService
from callgate.services.keys import KeysService
from callgate.services.schema import migrate
from callgate.services.views import ViewsService

__all__ = [
    "AlertsService",
    "BatchesService",
    "DeliveriesService",
    "GuardrailsService",
    "JobsService",
    "KeysService",
    "Service",
    "ViewsService",
    "alert_policy",
    "allowlist_entry",
    "migrate",
]
