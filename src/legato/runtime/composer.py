"""Composing messages: from a claimed delivery to the message a provider gets, or to the
reason it gets none.

For a batch of one workspace it reads what it needs in bulk (the people behind the deliveries,
their consent records, recent sends for frequency caps, their push devices, suppressions), then
for each delivery: the configuration (template, channel, topic), the address (explicit, a trait,
a registered device, the webhook URL), the gate (`legato.domain.delivery.gate`: consent and
subscription, suppression, caps, quiet hours in the person's timezone), rendering (profile
traits, computed traits, trigger event, journey data; the person's unsubscribe and preference
links), click and open tracking, and the List-Unsubscribe link of marketing email. Never calls
a provider and never writes: the delivery worker does both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from legato.channels.templates import TemplateRenderer, TemplateRenderError
from legato.channels.tracking import Tracker
from legato.domain.consent import ConsentState, Suppression
from legato.domain.delivery import Defer as GateDefer
from legato.domain.delivery import (
    DeliveryPolicy,
    EmailContent,
    MessageCategory,
    OutboundMessage,
    QuietHours,
    RecentSend,
    SkipReason,
    SmsContent,
    WhatsAppContent,
    gate,
    suppression_key,
    validate_address,
)
from legato.domain.delivery import Skip as GateSkip
from legato.domain.messages import format_instant
from legato.errors import InvalidInput
from legato.ports import ChannelProvider, Clock
from legato.runtime.channels import (
    BUILTIN_CHANNELS,
    DeliveryConfig,
    TemplateEntry,
    WorkspaceConfig,
)
from legato.runtime.timeline import MESSAGE_FAILED, MESSAGE_SKIPPED, message_event
from legato.store.consent import ConsentStore
from legato.store.database import Database
from legato.store.delivery import DeliveryRow, DeliveryStore, Settlement
from legato.store.devices import DeviceStore
from legato.store.recipients import Recipient, RecipientStore
from legato.store.runs import InternalEvent

#: Channel kinds that read their address from a profile trait.
TRAIT_ADDRESSES: Mapping[str, str] = {"email": "email", "sms": "phone", "whatsapp": "phone"}
#: Channel kinds whose address is a registered device.
DEVICE_KINDS = frozenset({"push", "webpush"})


@dataclass(slots=True)
class Plan:
    """What the composer decided about one claimed delivery before any provider call: a
    settlement (skip, defer, failure) with its event, or a message for a provider."""

    row: DeliveryRow
    who: Recipient | None
    kind: str | None = None
    category: MessageCategory | None = None
    settlement: Settlement | None = None
    event: InternalEvent | None = None
    message: OutboundMessage | None = None
    provider: ChannelProvider | None = None
    # The normalised address, known before the gate confirms it.
    address: str | None = None
    locale: str | None = None


def render_context(
    *,
    message_id: str,
    channel: str,
    template: str,
    who: Recipient | None,
    request: Mapping[str, Any],
    journey_key: str | None = None,
    node_id: str | None = None,
    unsubscribe_url: str | None = None,
    preferences_url: str | None = None,
) -> dict[str, Any]:
    """What a template sees: `profile` (id, traits, computed), `event` / `trigger`, `data`,
    `message`, `journey`, and the person's `unsubscribe_url` and `preferences_url`."""
    trigger = request.get("trigger") if isinstance(request.get("trigger"), dict) else {}
    assert isinstance(trigger, dict)
    at_ms = trigger.get("timestamp_ms")
    event = {
        "name": trigger.get("name"),
        "properties": trigger.get("properties") or {},
        "timestamp": format_instant(at_ms) if isinstance(at_ms, int) else None,
    }
    data = request.get("data")
    return {
        "profile": {
            "id": who.profile_id if who else None,
            "user_id": who.user_id if who else None,
            "traits": who.traits if who else {},
            "computed": who.computed if who else {},
            "computed_traits": who.computed if who else {},
        },
        "event": event,
        "trigger": event,
        "data": data if isinstance(data, dict) else {},
        "message": {"id": message_id, "channel": channel, "template": template},
        "journey": {"key": journey_key, "node": node_id},
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
    }


def effective_policy(policy: DeliveryPolicy, settings: Any) -> tuple[DeliveryPolicy, str]:
    """The workspace policy tightened by a journey's delivery settings (its quiet hours add to
    the workspace's, never replace them), and the trait holding the person's timezone."""
    if not isinstance(settings, dict):
        return policy, "timezone"
    update: dict[str, Any] = {}
    quiet = settings.get("quiet_hours")
    if isinstance(quiet, dict) and quiet.get("start") and quiet.get("end"):
        window = QuietHours(
            start=quiet["start"], end=quiet["end"], action=quiet.get("action") or "defer"
        )
        update["quiet_hours"] = (*policy.quiet_hours, window)
    zone_name = settings.get("timezone")
    if isinstance(zone_name, str) and zone_name != "UTC":
        update["default_timezone"] = zone_name
    trait = settings.get("timezone_trait")
    tightened = policy.model_copy(update=update) if update else policy
    return tightened, trait if isinstance(trait, str) and trait else "timezone"


class Composer:
    """Takes claimed deliveries of one workspace to provider-ready messages or settlements."""

    def __init__(
        self,
        db: Database,
        store: DeliveryStore,
        people: RecipientStore,
        consent_store: ConsentStore,
        devices: DeviceStore,
        config: DeliveryConfig,
        renderer: TemplateRenderer,
        clock: Clock,
    ) -> None:
        self.db = db
        self.store = store
        self.people = people
        self.consent_store = consent_store
        self.devices = devices
        self.config = config
        self.renderer = renderer
        self.clock = clock

    async def plan(
        self, config: WorkspaceConfig, tracker: Tracker, rows: list[DeliveryRow]
    ) -> list[Plan]:
        """Decide every claimed delivery of one workspace up to the provider call."""
        workspace_id = config.workspace_id
        now_ms = self.clock.now_ms()
        policy = config.policy
        async with self.db.connect() as conn:
            people = await self.people.recipients(
                conn, workspace_id, [r.profile_id for r in rows if r.profile_id]
            )
            live = sorted({who.profile_id for who in people.values()})
            consents = await self.consent_store.changes_of(conn, workspace_id, live)
            recent: dict[str, list[RecentSend]] = {}
            if policy.frequency_caps:
                recent = await self.store.recent_sends(
                    conn,
                    workspace_id,
                    live,
                    now_ms - policy.history_window_ms,
                    ignore_kinds=BUILTIN_CHANNELS.values(),
                )
            devices: dict[str, dict[str, str]] = {}
            kinds = {config.kind_of(r.channel) for r in rows}
            for kind in DEVICE_KINDS & {k for k in kinds if k}:
                devices[kind] = await self.devices.latest_addresses(conn, workspace_id, live, kind)
            plans = [
                await self._prepare(config, row, people.get(row.profile_id or ""), devices)
                for row in rows
            ]
            wanted = {
                (p.kind, suppression_key(p.kind, p.address))
                for p in plans
                if p.settlement is None and p.kind and p.address
            }
            suppressed = await self.consent_store.suppressed(conn, workspace_id, wanted)
        for plan in plans:
            if plan.settlement is None:
                self._decide(config, tracker, plan, consents, recent, suppressed, now_ms)
        return plans

    async def _prepare(
        self,
        config: WorkspaceConfig,
        row: DeliveryRow,
        who: Recipient | None,
        devices: Mapping[str, Mapping[str, str]],
    ) -> Plan:
        """Check the configuration and find the (normalised) address."""
        plan = Plan(row, who)
        template = config.template(row.template)
        kind = config.kind_of(row.channel)
        plan.kind = kind
        if template is None:
            return self._fail(plan, "unknown_template", f"no template {row.template!r}")
        plan.category = template.prepared.category
        if kind is None:
            return self._fail(plan, "channel_not_configured", f"no channel {row.channel!r}")
        if template.kind != kind:
            return self._fail(
                plan,
                "template_channel_mismatch",
                f"template {template.key!r} is for {template.kind}, channel {row.channel!r} "
                f"is {kind}",
            )
        topic = row.topic or template.prepared.topic
        if topic is not None and topic not in config.topics:
            return self._fail(plan, "unknown_topic", f"no subscription topic {topic!r}")
        try:
            plan.provider = await self.config.provider(config, row.channel)
        except InvalidInput as exc:
            return self._fail(plan, "channel_misconfigured", exc.message)
        if plan.provider is None:
            return self._fail(plan, "channel_not_configured", f"no channel {row.channel!r}")
        if row.profile_id is not None and who is None:
            return self._skip(plan, SkipReason.MISSING_ADDRESS, "the profile no longer exists")
        address = self._address(config, row, kind, who, devices)
        if address is None:
            return self._skip(plan, SkipReason.MISSING_ADDRESS, f"profile has no {kind} address")
        try:
            plan.address = validate_address(kind, address)
        except InvalidInput as exc:
            return self._skip(plan, SkipReason.INVALID_ADDRESS, exc.message)
        return plan

    @staticmethod
    def _address(
        config: WorkspaceConfig,
        row: DeliveryRow,
        kind: str,
        who: Recipient | None,
        devices: Mapping[str, Mapping[str, str]],
    ) -> str | None:
        explicit = row.request.get("to")
        if isinstance(explicit, str) and explicit.strip():
            return explicit
        if kind in BUILTIN_CHANNELS.values():
            return who.profile_id if who else None
        if kind in TRAIT_ADDRESSES:
            value = who.traits.get(TRAIT_ADDRESSES[kind]) if who else None
            return value if isinstance(value, str) else None
        if kind in DEVICE_KINDS:
            return devices.get(kind, {}).get(who.profile_id) if who else None
        if kind == "webhook":
            entry = config.channels.get(row.channel)
            document = entry.document if entry else {}
            settings = document.get("settings") or {}
            providers = document.get("providers") or []
            url = settings.get("url") if isinstance(settings, dict) else None
            if url is None and providers and isinstance(providers[0], dict):
                url = (providers[0].get("settings") or {}).get("url")
            return url if isinstance(url, str) else None
        return None

    def _decide(
        self,
        config: WorkspaceConfig,
        tracker: Tracker,
        plan: Plan,
        consents: Mapping[str, Any],
        recent: dict[str, list[RecentSend]],
        suppressed: Mapping[tuple[str, str], Suppression],
        now_ms: int,
    ) -> None:
        row, who, kind = plan.row, plan.who, plan.kind
        assert kind is not None and plan.address is not None and plan.category is not None
        address = plan.address
        template = config.template(row.template)
        assert template is not None
        topic_key = row.topic or template.prepared.topic
        topic = config.topics.get(topic_key) if topic_key else None
        builtin = kind in BUILTIN_CHANNELS.values()
        policy, tz_trait = effective_policy(config.policy, row.request.get("settings"))
        if builtin:
            # The inbox and web placements are read when the person chooses: no caps, no
            # quiet hours.
            policy = policy.model_copy(update={"quiet_hours": (), "frequency_caps": ()})
        person = who.profile_id if who else None
        state = ConsentState.from_changes(consents.get(person, []) if person else [])
        timezone = who.traits.get(tz_trait) if who else None
        decision = gate(
            channel=kind,
            address=address,
            category=plan.category,
            topic=topic,
            consent=state,
            suppression=suppressed.get((kind, suppression_key(kind, address))),
            recent_sends=recent.get(person, []) if person else [],
            policy=policy,
            timezone=timezone if isinstance(timezone, str) else None,
            now_ms=now_ms,
        )
        if isinstance(decision, GateSkip):
            self._skip(plan, decision.reason, decision.detail)
            return
        if isinstance(decision, GateDefer):
            plan.settlement = Settlement(
                row.id,
                "queued",
                {
                    "next_attempt_ms": decision.until_ms,
                    "reason": decision.reason.value,
                    "detail": f"deferred: {decision.detail}",
                    "kind": kind,
                    "category": plan.category.value,
                },
            )
            return
        self._render(config, tracker, plan, template, decision.address, topic_key, now_ms)
        marketing = plan.category is MessageCategory.MARKETING
        if plan.message is not None and person and marketing and not builtin:
            recent.setdefault(person, []).append(RecentSend(kind, plan.category, now_ms))

    def _render(
        self,
        config: WorkspaceConfig,
        tracker: Tracker,
        plan: Plan,
        template: TemplateEntry,
        address: str,
        topic: str | None,
        now_ms: int,
    ) -> None:
        row, who, kind = plan.row, plan.who, plan.kind
        assert kind is not None
        workspace_id = config.workspace_id
        unsubscribe = preferences = None
        if who is not None and kind not in BUILTIN_CHANNELS.values():
            # Email always carries List-Unsubscribe; other templates only when they show it.
            if kind == "email" or "unsubscribe_url" in template.mentions:
                unsubscribe = tracker.unsubscribe_url(
                    workspace_id=workspace_id,
                    profile_id=who.profile_id,
                    channel=kind,
                    topic=topic,
                    message_id=row.id,
                )
            if "preferences_url" in template.mentions:
                preferences = tracker.preferences_url(
                    workspace_id=workspace_id, profile_id=who.profile_id
                )
        context = render_context(
            message_id=row.id,
            channel=row.channel,
            template=row.template,
            who=who,
            request=row.request,
            journey_key=row.journey_key,
            node_id=row.node_id,
            unsubscribe_url=unsubscribe,
            preferences_url=preferences,
        )
        locale = who.traits.get("locale") if who else None
        try:
            rendered = self.renderer.render(
                template.prepared, context, locale=locale if isinstance(locale, str) else None
            )
        except TemplateRenderError as exc:
            self._skip(plan, SkipReason.RENDER_FAILED, exc.message)
            return
        content = rendered.content
        if isinstance(content, EmailContent):
            marketing = plan.category is MessageCategory.MARKETING
            html = content.html
            if html is not None:
                html = tracker.track_html(html, workspace_id=workspace_id, message_id=row.id)
            content = dataclasses.replace(
                content, html=html, unsubscribe_url=unsubscribe if marketing else None
            )
        elif isinstance(content, SmsContent | WhatsAppContent):
            text = content.body if isinstance(content, SmsContent) else content.text
            if (
                text is not None
                and not text.strip()
                and not getattr(content, "template_name", None)
            ):
                self._skip(plan, SkipReason.RENDER_FAILED, "the rendered message body is empty")
                return
        tags = {"template": row.template, "workspace": workspace_id}
        if template.placement:
            tags["placement"] = template.placement
        if template.expires_after_ms:
            tags["expires_ms"] = str(now_ms + template.expires_after_ms)
        plan.locale = rendered.locale or None
        plan.message = OutboundMessage(
            message_id=row.id,
            channel=kind,
            to=address,
            content=content,
            profile_id=who.profile_id if who else None,
            tags=tags,
        )

    def _skip(self, plan: Plan, reason: SkipReason, detail: str) -> Plan:
        now_ms = self.clock.now_ms()
        plan.settlement = Settlement(
            plan.row.id,
            "skipped",
            {
                "reason": reason.value,
                "detail": detail,
                "kind": plan.kind,
                "category": plan.category.value if plan.category else None,
            },
        )
        plan.event = message_event(
            self.row_of(plan),
            MESSAGE_SKIPPED,
            suffix=f"skipped:{now_ms}",
            at_ms=now_ms,
            who=plan.who,
            reason=reason.value,
            detail=detail,
        )
        return plan

    def _fail(self, plan: Plan, reason: str, detail: str) -> Plan:
        now_ms = self.clock.now_ms()
        plan.settlement = Settlement(
            plan.row.id,
            "failed",
            {
                "reason": reason,
                "detail": detail,
                "kind": plan.kind,
                "category": plan.category.value if plan.category else None,
            },
        )
        plan.event = message_event(
            self.row_of(plan),
            MESSAGE_FAILED,
            suffix=f"failed:{now_ms}",
            at_ms=now_ms,
            who=plan.who,
            reason=reason,
            detail=detail,
        )
        return plan

    @staticmethod
    def row_of(plan: Plan) -> DeliveryRow:
        category = plan.category.value if plan.category else plan.row.category
        return dataclasses.replace(plan.row, category=category, kind=plan.kind)
