"""The notification engine of one notifier process.

Events become notification documents (``accept``, called by the Kafka handler): a new review is
planned whole (its notices, reminders and escalation steps, each with its due time); a closed
review cancels what is still waiting and asks for its Slack messages to be updated. A sweep
claims what is due, with a lease, as many as there are free sending slots, and sends each; a
notifier killed mid-send leaves its leases to lapse, and any replica sends that work again (at
least once: a recipient may get a retried mail twice, with the same Message-ID). The sweep is the
one the dispatcher runs too (:mod:`sayso_service.leased_worker`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sayso_service.leased_worker import Clock, LeasedWorker

from sayso_common import answer_links, attempts, audit, membership, notifications, otel, reviews
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import (
    AgentDoc,
    MessageDoc,
    NotificationDoc,
    NotificationPrefsDoc,
    ReviewDoc,
    UserDoc,
)
from sayso_common.events import OPERATOR_EVENTS, Event, MessageCreated, ReviewExpired, ReviewResponded
from sayso_common.mongo import (
    AGENTS,
    AUDIT,
    MESSAGES,
    NOTIFICATIONS,
    USERS,
    Database,
    collection,
    insert_new,
    untyped,
)
from sayso_common.notifications import NotificationAttempt
from sayso_common.reviews import Choice
from sayso_common.secretbox import SecretBox
from sayso_notifier import content, metrics, planner
from sayso_notifier.quiet import held_until
from sayso_notifier.senders import Mailer, Sent, Slack, unsent
from sayso_notifier.settings import NotifierSettings
from sayso_notifier.store import NotificationStore

log = logging.getLogger(__name__)

MESSAGE_FIELDS = {"channel_id": 1, "owner_id": 1, "text": 1, "review": 1, "created_at": 1}
# Reviews of one Kafka batch planned at once (each plan is four reads and one insert).
PLANNING_CONCURRENCY = 16


class Worker(LeasedWorker[NotificationDoc]):
    """Takes every collaborator it uses; :meth:`create` builds the real ones."""

    noun = "notification"

    def __init__(
        self,
        settings: NotifierSettings,
        db: Database,
        instance: str,
        *,
        store: NotificationStore,
        box: SecretBox,
        mailer: Mailer,
        slack: Slack,
        clock: Clock = utcnow,
    ) -> None:
        super().__init__(
            settings, store, instance, clock=clock, due_gauge=metrics.DUE, leases_lost=metrics.LEASES_LOST
        )
        self._settings = settings
        self._db = db
        self.store: NotificationStore = store
        self._box = box
        self._mailer = mailer
        self._slack = slack
        self._key = answer_links.link_key(settings.secret_key.get_secret_value())
        self._public = settings.public_url.rstrip("/")
        metrics.IN_FLIGHT.set_function(lambda: self.in_flight)
        if not mailer.ready:
            log.warning("SAYSO_SMTP_URL is not set: e-mail notifications are recorded as not configured")

    @classmethod
    def create(
        cls,
        settings: NotifierSettings,
        db: Database,
        box: SecretBox,
        mailer: Mailer,
        slack: Slack,
        instance: str,
        *,
        store: NotificationStore | None = None,
        clock: Clock = utcnow,
    ) -> Worker:
        """The worker with the real collaborators, but for those given."""
        return cls(
            settings,
            db,
            instance,
            store=store if store is not None else NotificationStore(db, instance, settings.lease_seconds),
            box=box,
            mailer=mailer,
            slack=slack,
            clock=clock,
        )

    # --- events -> notifications ------------------------------------------------------------

    async def accept(self, events: Sequence[Event]) -> None:
        """Handle a batch: each review's events in order, different reviews side by side (a
        batch of new reviews is a few MongoDB round trips each, not one after another)."""
        by_review: dict[str, list[Event]] = {}
        for event in events:
            if isinstance(event, MessageCreated | ReviewResponded | ReviewExpired):
                by_review.setdefault(event.data.message.id, []).append(event)
            elif isinstance(event, OPERATOR_EVENTS):
                # One incident each: nothing to order them against.
                by_review.setdefault(event.id, []).append(event)
        slots = asyncio.Semaphore(PLANNING_CONCURRENCY)

        async def handle(group: list[Event]) -> None:
            async with slots:
                for event in group:
                    if otel.active():
                        with otel.processing(event.type, event.id, event.traceparent):
                            await self._handle(event)
                    else:
                        await self._handle(event)

        await asyncio.gather(*(handle(group) for group in by_review.values()))
        self.wake()

    async def _handle(self, event: Event) -> None:
        if isinstance(event, MessageCreated):
            review = event.data.message.review
            if review is not None and review.status == "pending":
                await self.plan(event.data.message.id)
        elif isinstance(event, ReviewResponded | ReviewExpired):
            await self.closed(event.data.message.id)
        elif isinstance(event, OPERATOR_EVENTS):
            owner = await collection(self._db, USERS).find_one({"_id": event.owner_id})
            await self.store.insert_new(planner.operator_notices(event, owner, self.clock()))

    async def plan(self, message_id: str) -> int:
        """Create every notification a new review calls for; returns how many were new."""
        message = await collection(self._db, MESSAGES).find_one({"_id": message_id}, MESSAGE_FIELDS)
        if message is None or "review" not in message or message["review"]["status"] != "pending":
            return 0
        agent = await collection(self._db, AGENTS).find_one({"_id": message["channel_id"]})
        if agent is None:
            return 0
        users = collection(self._db, USERS)
        people = {
            u["_id"]: u for u in await users.find({"_id": {"$in": planner.recipients(agent)}}).to_list()
        }
        docs = planner.plan(message, agent, people, self.clock(), self._mailer.ready)
        inserted = await self.store.insert_new(docs)
        for doc in inserted:
            if doc["state"] == "skipped":
                metrics.NOTIFICATIONS.labels(doc["kind"], "skipped").inc()
                log.info(
                    "notification skipped: %s", doc.get("last_error"), extra={"notification": doc["_id"]}
                )
        return len(inserted)

    async def closed(self, message_id: str) -> None:
        """A review was answered or expired: nothing more to remind of, and every Slack message
        that showed its buttons gets the outcome."""
        now = self.clock()
        for kind, cancelled in (await self.store.cancel_for_review(message_id, now)).items():
            metrics.NOTIFICATIONS.labels(kind, "cancelled").inc(cancelled)
        await self._slack_outcomes(await self.store.sent_slack(message_id), now)

    async def _slack_outcomes(self, sent: list[NotificationDoc], now: datetime) -> None:
        # One update per Slack destination; one the API made from a button click (with the
        # click's response_url) already holds the key and wins.
        by_recipient = {doc["recipient_id"]: doc for doc in sent}
        await self.store.insert_new([notifications.outcome_of(d, now, None) for d in by_recipient.values()])

    # --- the sweep (LeasedWorker's) -----------------------------------------------------------

    def room(self) -> int:
        """Only as many as can start now: a claimed notification never waits in memory while its
        lease runs out."""
        return self._settings.concurrency - self.in_flight

    def start(self, doc: NotificationDoc) -> None:
        self.spawn(self._attempt(doc), then_wake=True)  # a finished send frees a slot

    async def watch_inserts(self) -> None:
        """Wake the sweep when the API adds work (a Slack message to update after a click)."""
        await self.wake_on_changes(
            untyped(self._db, NOTIFICATIONS),
            [{"$match": {"operationType": "insert"}}, {"$project": {"_id": 1}}],
        )

    # --- one notification ---------------------------------------------------------------------

    async def _attempt(self, doc: NotificationDoc) -> None:
        try:
            await self._attempt_once(doc)
        except Exception:
            # Not recorded: the lease lapses and the notification is sent again (at least once).
            log.exception("notification attempt failed", extra={"notification": doc["_id"]})

    async def _close(self, doc: NotificationDoc, state: Literal["cancelled", "skipped"], reason: str) -> None:
        if await self.store.apply(*notifications.closed(doc, state, reason, self.clock())):
            metrics.NOTIFICATIONS.labels(doc["kind"], state).inc()

    async def _attempt_once(self, doc: NotificationDoc) -> None:
        if doc["purpose"].startswith(notifications.OPERATOR):
            await self._operator_attempt(doc)
            return
        now = self.clock()
        message = await collection(self._db, MESSAGES).find_one({"_id": doc["message_id"]}, MESSAGE_FIELDS)
        if message is None or "review" not in message:
            await self._close(doc, "cancelled", "the message was deleted")
            return
        review = message["review"]
        outcome = doc["purpose"] == notifications.OUTCOME
        if not outcome and not reviews.is_open(review, now):
            await self._close(doc, "cancelled", "the review was closed first")
            return
        agent = await collection(self._db, AGENTS).find_one({"_id": doc["channel_id"]})
        if agent is None:
            await self._close(doc, "cancelled", "the channel was deleted")
            return
        user: UserDoc | None = None
        if doc["recipient_kind"] == "user":
            user = await collection(self._db, USERS).find_one({"_id": doc["recipient_id"]})
            if user is None:
                await self._close(doc, "skipped", "the user no longer exists")
                return
            if not membership.may_answer(agent, user["_id"]):
                # Removed from the channel since this was planned (the removal cancels what was
                # not claimed; this catches what was).
                await self._close(doc, "cancelled", notifications.NO_LONGER_A_REVIEWER)
                return
        prefs: NotificationPrefsDoc = (user.get("notifications") if user else None) or {}
        if doc["kind"] == "email" and not prefs.get("email", True):
            await self._close(doc, "skipped", "the recipient turned e-mail off")
            return
        if user is not None and not outcome:
            until = held_until(now, prefs, bool(doc.get("escalation")))
            if until is not None:
                # No notice inside quiet hours; it goes out when they end.
                if await self.store.apply(*notifications.deferred(doc, until, now)):
                    metrics.DEFERRED.inc()
                    self.wake_at(until)
                return
        notice = content.Notice(
            purpose=doc["purpose"],
            channel_name=agent["name"],
            text=message.get("text") or "",
            review_type=review["type"],
            expires_at=review["expires_at"],
            inbox_url=f"{self._public}/#/c/{doc['channel_id']}",
            editable=reviews.of(review).editable,
        )
        at = self.clock()
        if doc["kind"] == "email":
            sent = await self._email(doc, notice, review)
        else:
            url = self._slack_url(doc, agent, prefs)
            if url is None:
                await self._close(doc, "skipped", "no Slack webhook is set")
                return
            if outcome:
                responder = await self._email_of(review.get("responded_by"))
                body = content.slack_outcome(
                    notice, content.outcome_line(review, responder), replace=bool(doc.get("response_url_enc"))
                )
            else:
                body = content.slack_review(notice, self._tokens(doc, review))
            sent = await self._slack.post(url, body)
        await self._record(doc, sent, at, message)

    async def _operator_attempt(self, doc: NotificationDoc) -> None:
        """An operator notice (an e-mail to the channel's owner about a webhook incident): read
        the owner's preference again at send time, as every notice does."""
        owner = await collection(self._db, USERS).find_one({"_id": doc["recipient_id"]})
        if owner is None:
            await self._close(doc, "skipped", "the user no longer exists")
            return
        if (owner.get("notifications") or {}).get("operator_emails") is False:
            await self._close(doc, "skipped", "the recipient turned operator e-mails off")
            return
        if not self._mailer.ready:
            await self._close(
                doc, "skipped", "e-mail is not configured on this installation (SAYSO_SMTP_URL)"
            )
            return
        agent = await collection(self._db, AGENTS).find_one({"_id": doc["channel_id"]}, {"name": 1})
        incident = doc["incident"]
        notice = content.IncidentNotice(
            type=incident["type"],
            channel_name=agent["name"] if agent else doc["channel_id"],
            endpoint_id=incident["endpoint_id"],
            url=incident["url"],
            reason=incident["reason"],
            since=incident["since"],
            inbox_url=f"{self._public}/#/c/{doc['channel_id']}",
        )
        subject, text, page = content.operator_email(notice)
        at = self.clock()
        sent = await self._mailer.send(self._mailer.message(owner["email"], subject, text, page, doc["_id"]))
        await self._record(doc, sent, at, None)

    def _tokens(self, doc: NotificationDoc, review: ReviewDoc) -> list[tuple[Choice, str]]:
        """A signed token per one-click answer, expiring with the review."""
        responder = doc.get("responder_id")
        if responder is None:
            return []
        expires = int(as_utc(review["expires_at"]).timestamp())
        return [
            (
                choice,
                answer_links.sign(
                    self._key,
                    answer_links.AnswerLink(doc["_id"], doc["message_id"], responder, choice.option, expires),
                ),
            )
            for choice in reviews.of(review).choices()
        ]

    async def _email(self, doc: NotificationDoc, notice: content.Notice, review: ReviewDoc) -> Sent:
        links = [(choice, f"{self._public}/a/{token}") for choice, token in self._tokens(doc, review)]
        subject, text, page = content.email(notice, links)
        address = doc.get("address")
        if not address:
            return unsent(attempts.ErrorKind.NO_ADDRESS, "the notification names no address")
        return await self._mailer.send(self._mailer.message(address, subject, text, page, doc["_id"]))

    def _slack_url(self, doc: NotificationDoc, agent: AgentDoc, prefs: NotificationPrefsDoc) -> str | None:
        """Opened from where it is kept, at send time: the secret exists once, sealed."""
        sealed = doc.get("response_url_enc") or (
            agent.get("slack_webhook_enc")
            if doc["recipient_kind"] == "channel"
            else prefs.get("slack_webhook_enc")
        )
        if not sealed:
            return None
        try:
            return self._box.open(sealed)
        except (ValueError, TypeError):
            log.error("a stored Slack URL cannot be opened", extra={"notification": doc["_id"]})
            return None

    async def _email_of(self, user_id: str | None) -> str | None:
        if not user_id:
            return None
        user = await collection(self._db, USERS).find_one({"_id": user_id}, {"email": 1})
        return user["email"] if user else None

    async def _record(
        self, doc: NotificationDoc, sent: Sent, at: datetime, message: MessageDoc | None
    ) -> None:
        now = self.clock()
        delay = None
        if sent.verdict == "retry":
            delay = self.retry_delay(
                self._settings.retry_schedule, doc.get("attempt_count", 0) + 1, sent.retry_after
            )
        attempt = NotificationAttempt(at, sent.duration_ms, sent.error_kind, sent.error, self.instance)
        update, state, next_at = notifications.recorded(
            doc, attempt, sent.verdict, delay, now, self._settings.attempts_kept
        )
        metrics.ATTEMPTS.labels(doc["kind"], sent.verdict).inc()
        metrics.ATTEMPT_SECONDS.labels(doc["kind"]).observe(sent.duration_ms / 1000)
        if state == "sent" and doc["purpose"].startswith(notifications.ESCALATION):
            # Before the notification counts as sent: dying in between sends it again, and the
            # entry (keyed by the notification) is then stored once.
            await insert_new(collection(self._db, AUDIT), [audit.escalated(doc, now)])
        if not await self.store.record(doc, update):
            self.claim_lost(doc["_id"])
            return
        if state != "pending":
            metrics.NOTIFICATIONS.labels(doc["kind"], state).inc()
        if next_at is not None:
            self.wake_at(next_at)
        if (
            message is not None
            and state == "sent"
            and doc["kind"] == "slack"
            and doc["purpose"] != notifications.OUTCOME
        ):
            # The review may have closed while its buttons were on their way: update that message
            # too (closed() ran before it counted as sent).
            current = await collection(self._db, MESSAGES).find_one(
                {"_id": message["_id"]}, {"review.status": 1}
            )
            if current is None or current.get("review", {}).get("status") != "pending":
                await self._slack_outcomes([{**doc, "state": "sent"}], now)
